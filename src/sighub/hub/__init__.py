"""sighub hub: the server side: SQLite storage, PKI and enrollment, authentication and
authorization, publish validation, sync streams, administration, audit, and the ``sighub``
console script (operator commands plus the client's member commands).  It is run, not
imported: ``sighub hub init`` / ``sighub hub serve`` / ``sighub admin``."""

__all__: list[str] = []
