"""The data sources: CelebA, the synthetic faces in its layout, and folders of images.

Their errors live here, so that the commands can report them without importing the readers (and pandas)."""


class LayoutError(ValueError):
    """A CelebA directory whose files are missing or inconsistent."""


class FetchError(ValueError):
    """A CelebA file that is missing, is not what it should be, or cannot be downloaded."""


class FolderError(ValueError):
    """An image folder that is missing or holds no usable image."""
