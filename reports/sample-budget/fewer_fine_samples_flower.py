import torch
from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene
from nerf_eval.metrics import psnr
scene = load_scene("../shared/data/nerf_llff_data/flower").rescaled(0.25)
pair = load_checkpoint("checkpoints/flower/checkpoint.pt")
views = list(scene.subset("test"))
for nc, nf in [(64, 128), (64, 64)]:
    s = RenderSettings(white_bkgd=scene.white_bkgd, n_coarse=nc, n_fine=nf, lindisp=False)
    ps = [psnr(render_chunked(pair, scene.rays(v), s)["rgb"], scene.target(v).reshape(-1, 3)) for v in views]
    print(nc, nf, [round(p, 2) for p in ps], round(sum(ps) / len(ps), 3), flush=True)
