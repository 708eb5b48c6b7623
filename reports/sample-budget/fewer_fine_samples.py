import sys, torch
from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene
from nerf_eval.metrics import psnr
scene_spec, ckpt = sys.argv[1:3]
scene, pair = load_scene(scene_spec), load_checkpoint(ckpt)
views = list(scene.subset(sys.argv[3] if len(sys.argv) > 3 else "test"))[:4]
for nc, nf in [(64, 128), (64, 96), (64, 64), (64, 48), (64, 32)]:
    s = RenderSettings(white_bkgd=scene.white_bkgd, n_coarse=nc, n_fine=nf)
    ps = []
    for v in views:
        out = render_chunked(pair, scene.rays(v), s)
        gt = scene.target(v).reshape(-1, 3)
        ps.append(psnr(out["rgb"], gt))
    print(nc, nf, [round(p, 2) for p in ps], round(sum(ps) / len(ps), 3))
