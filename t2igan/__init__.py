"""t2igan: a text-to-image GAN studio — prompt → sentence embedding + noise → generator → image."""
from .latent import Latent
from .models import Discriminator, Generator
from .pipeline import T2IGANPipeline
from .text import TextEncoder

__all__ = ["Discriminator", "Generator", "Latent", "T2IGANPipeline", "TextEncoder"]
__version__ = "0.1.0"
