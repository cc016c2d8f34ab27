"""epigraf-tools: load EpiGRAF checkpoints and make images, videos, volumes and meshes."""
