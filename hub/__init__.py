"""sighub hub: the server side (storage, authn/authz, publish, sync, admin, federation).

The hub service itself arrives with the hub issue; today this package assembles the
``sighub`` console script."""

__all__: list[str] = []
