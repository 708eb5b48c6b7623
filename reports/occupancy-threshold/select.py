"""Choose the occupancy threshold on val views (object: its val split; flower: val=train views), never
on the test views reported. Prints one table row per (scene, threshold): ΔPSNR, ΔSSIM, worst-view drop,
occupied share and paired speed-up of the latency batch."""
import sys
import time


from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import machine_summary
from nerf_eval.measure.batches import calibration_batch, latency_batch
from nerf_eval.measure.latency import PairedProtocol
from nerf_eval.measure.quality import measure_quality
from nerf_eval.measure.render_latency import time_renders
from nerf_eval.render import RenderSettings
from nerf_eval.scenes import load_scene

NAMES = sys.argv[2].split(",") if len(sys.argv) > 2 else [f"occupancy:threshold={t:g}" for t in (0.01, 0.003, 0.001, 0.0003)]
which = sys.argv[1] if len(sys.argv) > 1 else ""
if which not in ("object", "flower"):
    sys.exit("usage: python reports/occupancy-threshold/select.py object|flower [VARIANT,...]")
if which == "object":
    spec, ckpt, scale = "object", "checkpoints/object/checkpoint.pt", 0.5
else:
    spec, ckpt, scale = "../shared/data/nerf_llff_data/flower:val=train", "checkpoints/flower/checkpoint.pt", 0.25
full = load_scene(spec)
scene = full.rescaled(scale)
views = scene.split("val")[:3]
pair = load_checkpoint(ckpt).eval()
settings = RenderSettings(white_bkgd=scene.white_bkgd)
cal = calibration_batch(full, 4096)
lat = latency_batch(scene, 1024)
print(f"# {machine_summary()}; {spec} at scale {scale}, val views {views}, {time.strftime('%FT%TZ', time.gmtime())}", flush=True)
base, _ = measure_quality("fp32", pair, scene, views, settings, with_flip=False)
models = {}
for name in NAMES:
    models[name] = get_compressor(name).compress(pair, cal)
timing = time_renders(pair, models, lat, settings, PairedProtocol(rounds=5, warmup=1, order="alternate"))
print("| variant | occupied | ΔPSNR | ΔSSIM | worst-view Δ | paired speed-up (IQR) | val render s (fp32 %.1f) |" % base.render_time_s)
for name, m in models.items():
    rec, _ = measure_quality(name, m, scene, views, settings, with_flip=False)
    grid = m.meta["occupancy"]
    print(f"| {name} | {grid.occupied_fraction:.3f} | {rec.psnr - base.psnr:+.3f} | {rec.ssim - base.ssim:+.4f} | "
          f"{rec.worst_psnr - base.worst_psnr:+.3f} | {timing[name].speedup:.2f}x ({timing[name].spread:.2f}) | {rec.render_time_s:.1f} |", flush=True)
