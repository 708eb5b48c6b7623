import sys, time
import torch
from torch import nn
from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.measure.batches import calibration_batch
from nerf_eval.model import ModelPair
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene
from nerf_eval.metrics import psnr

class Counter(nn.Module):
    def __init__(self, net):
        super().__init__(); self.net, self.points = net, 0
    def forward(self, x):
        self.points += x.shape[0]; return self.net(x)

scene_spec, ckpt, name = sys.argv[1:4]
views = int(sys.argv[4]) if len(sys.argv) > 4 else 3
scene, pair = load_scene(scene_spec), load_checkpoint(ckpt)
t = time.time()
occ = get_compressor(name).compress(pair, calibration_batch(scene, 2048))
print(name, "bake s", round(time.time() - t, 1), {k: v for k, v in occ.meta["occupancy"].info.items() if k.startswith("occ")})
import os; settings = RenderSettings(white_bkgd=scene.white_bkgd, n_fine=int(os.environ.get("NF", 128)))
tot = [0, 0, 0]; dp = []
for view in list(scene.subset("test"))[:views]:
    rays = scene.rays(view)
    c, f = Counter(occ.coarse), Counter(occ.fine)
    out = render_chunked(ModelPair(c, f, occ.config, occ.meta), rays, settings)
    ref = render_chunked(pair, rays, settings)
    dp.append(float((out["rgb"] - ref["rgb"]).abs().max()))
    tot = [tot[0] + c.points, tot[1] + f.points, tot[2] + len(rays)]
n = tot[2]
share = (tot[0] + tot[1]) / (n * 256)  # vs plain 64+128
print(f"coarse {tot[0]/n:.1f} fine {tot[1]/n:.1f} share {share:.3f} bound {1/share:.2f}x maxdiff {max(dp):.4f}")
