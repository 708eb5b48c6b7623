import sys, torch
from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.measure.batches import calibration_batch
from nerf_eval.render import RenderSettings, render_rays, OCCUPANCY_KEY
from nerf_eval.model import ModelPair
from nerf_eval.scenes import load_scene
scene_spec, ckpt = sys.argv[1:3]
scene, pair = load_scene(scene_spec), load_checkpoint(ckpt)
occ = get_compressor("occupancy").compress(pair, calibration_batch(scene, 2048))
grid = occ.meta[OCCUPANCY_KEY]
settings = RenderSettings(white_bkgd=scene.white_bkgd)
view = list(scene.subset("test"))[0]
rays = scene.rays(view)
with torch.inference_mode():
    out = render_rays(pair, rays, settings)
z = out["z_vals"]; w = out["weights"]
pts = rays.origins[:, None] + rays.directions[:, None] * z[..., None]
keep = grid.occupied(pts, "fine")
# transmittance before each sample
alpha_w = w
T = 1 - torch.cumsum(w, -1) + w
acc = out["acc"]
print("rays", len(rays), "acc>0.5 share", float((acc > 0.5).float().mean()))
for name, m in [("all", torch.ones_like(acc, dtype=torch.bool)), ("hit", acc > 0.5), ("miss", acc <= 0.5)]:
    k = keep[m]; t = T[m]; ww = w[m]
    print(name, "kept/ray %.1f" % k.sum(-1).float().mean(),
          "kept T>0.999 %.1f" % (k & (t > 0.999)).sum(-1).float().mean(),
          "kept 1e-4<T<.999 %.1f" % (k & (t <= 0.999) & (t > 1e-4)).sum(-1).float().mean(),
          "kept T<1e-4 %.1f" % (k & (t <= 1e-4)).sum(-1).float().mean(),
          "kept w<1e-4 %.1f" % (k & (ww < 1e-4)).sum(-1).float().mean())
# sample spread for hit rays: depth range of fine samples around surface
hit = acc > 0.5
zz = z[hit]
print("fine z spread on hit rays: median (z[-1]-z[0]) of kept", float(((zz * keep[hit]).max(-1).values - torch.where(keep[hit], zz, 1e9).min(-1).values).median()))
print("near far", float(rays.near[0]), float(rays.far[0]))
print("grid box", grid.lower.tolist(), grid.upper.tolist(), "cell", ((grid.upper-grid.lower)/64).tolist())
# sigma of fine net at kept T>0.999 samples on hit rays
from nerf_eval.render import query_network
with torch.inference_mode():
    raw = query_network(pair.fine, pair.config, pts[hit], rays.viewdirs[hit])
s = torch.relu(raw[..., 3]); kk = keep[hit] & (T[hit] > 0.999)
v = s[kk]
print("sigma at kept pre-surface samples: quantiles", torch.quantile(v[:100000], torch.tensor([0.1,0.5,0.9,0.99])).tolist(), "sigma_min", grid.info["sigma_min"])
