"""The sighub SDK's implementation: what every member installs and the hub builds on.

Import the public names from :mod:`sighub` (detection code, a platform's daemon) or
:mod:`sighub.wire` (what a second implementation computes alike); every module in this
package is private (underscored) and may change in any release.
"""

__all__: list[str] = []
