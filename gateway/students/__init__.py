"""Students' own side of the gateway: their accounts and their "notify me" watches."""
