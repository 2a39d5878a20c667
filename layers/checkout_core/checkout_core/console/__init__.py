"""The console: a merchant's and an operator's pages of their own tenant at /console, server-rendered.

Signed in with the tenant's API key, it reads through the capabilities' own reads and changes state only
through their own actions (cancel with actor `console`, the webhook endpoint operations): no second way
to change state."""
