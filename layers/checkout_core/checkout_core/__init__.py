"""Domain code shared by every function of checkout-sessions."""
