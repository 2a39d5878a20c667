"""The hosted checkout page: what a customer sees at /pay/<token> and the forms it posts."""
