"""The EG3D model family: tri-plane generator, super-resolution and dual discriminator, under official names."""
