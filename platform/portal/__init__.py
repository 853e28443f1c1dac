"""Server-rendered pages: login, one dashboard per role, task progress, the event log."""
