"""Image loading lives in :mod:`chartwise.tools.image_loading` (tools own image loading; the agent
may import tools, never the reverse). Re-exported here for the backends."""
from chartwise.tools.image_loading import *  # noqa: F401,F403
from chartwise.tools.image_loading import ImageAttachment, image_to_data_url, load_image, load_images  # noqa: F401
