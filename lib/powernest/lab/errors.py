"""The one exception the lab builder raises."""

from powernest.errors import PowernestError


class LabBuildError(PowernestError):
    """The lab images could not be built or found; the message says why and what to do."""
