"""The one exception the lab builder raises."""


class LabBuildError(Exception):
    """The lab images could not be built or found; the message says why and what to do."""
