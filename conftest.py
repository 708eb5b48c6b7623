"""Root conftest: make runs reproducible and keep torch to the machine's cores."""

import os

import torch

torch.manual_seed(0)
torch.set_num_threads(max(1, min(os.cpu_count() or 1, int(os.environ.get("NERF_THREADS", "1")))))
