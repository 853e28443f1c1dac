"""The shared kernel below the apps: what every app uses and none owns. `errors` (what actions
raise, and the portal and the API answer with), `inputs` (checking an action's plain inputs)
and `paths` (where the platform's state lives). It imports Django and no app of the platform,
nor the project shell (`miliao`): tests/miliao/test_layers.py checks it."""
