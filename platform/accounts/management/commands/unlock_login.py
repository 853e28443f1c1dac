"""`manage.py unlock_login <username> [--by <steward>]`: end a login lockout before its cool-off."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts import actions
from accounts.models import User
from kernel.errors import ActionError


class Command(BaseCommand):
    help = (
        "Clear a username's failed logins from every client address, so it may log in again at "
        "once (the page and the API refuse it with 429 while locked). Records accounts.login_unlocked."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="the locked-out account")
        parser.add_argument("--by", dest="steward", default="", help="the steward or admin unlocking it, named in the event")

    def handle(self, *args, username: str, steward: str = "", **options):
        actor = None
        if steward:
            actor = User.objects.filter(username=steward).first()
            if actor is None:
                raise CommandError(f"--by: no user is named {steward!r}")
        try:
            cleared = actions.unlock_login(actor=actor, username=username)
        except ActionError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"unlocked {username}: {cleared} failed-login counter(s) cleared")
