"""sighub: federated, signed, blinded signal sharing between trust-and-safety teams.

The distribution installs this one package:

- ``sighub.client``: the SDK every member installs (model, canon/1, blinding, the pattern
  gate, STIX bundles, envelopes, matching, the member's sync daemon).
- ``sighub.hub``: the server (storage, publish rules, PKI, gRPC services) and the
  ``sighub`` console script.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__: str = version("sighub")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0.0.0+unknown"
