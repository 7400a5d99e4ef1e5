"""Users, passwords, login tokens and login throttling (docs/decisions/0007).

``roles`` (the five roles, the caller), ``passwords`` (argon2id, strength rules), ``users``
(accounts), ``tokens`` (bearer tokens kept as digests), ``login`` (the login itself),
``throttle`` (the pure throttle arithmetic), ``throttle_store`` (the counts in the database) and
``addresses`` (which client a login comes from). Nothing here imports FastAPI: the HTTP side is
gateway.api.
"""
