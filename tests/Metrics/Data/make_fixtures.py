"""Regenerates the small decoding/resize fixtures with Pillow 9.4 (Debian 12's python3-pil), the reference of the
golden metrics case. Run: /usr/bin/python3 make_fixtures.py (writes next to this script). expected.json holds, per
file, Pillow's ImageOps.exif_transpose(Image.open(f)).convert('RGB') size and sha256 of the RGB bytes, and for the
resize checks the sha256 of Image.resize(size, BICUBIC) of a seeded random RGB image."""
import hashlib, json, os
from PIL import Image, ImageOps, ImageDraw, features

here = os.path.dirname(os.path.abspath(__file__))
W, H = 64, 48


def drawing():
    im = Image.new("RGB", (W, H))
    px = im.load()
    for y in range(H):
        for x in range(W):
            px[x, y] = ((x * 4) % 256, (y * 5) % 256, ((x + y) * 3) % 256)
    d = ImageDraw.Draw(im)
    d.ellipse((10, 8, 40, 38), fill=(220, 40, 60))
    d.rectangle((44, 4, 60, 20), fill=(30, 90, 200))
    return im


def rgb_info(path):
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return {"width": im.width, "height": im.height, "mode": Image.open(path).mode,
            "sha256_of_rgb_bytes": hashlib.sha256(im.tobytes()).hexdigest()}


out = {"pillow": Image.__version__, "webp": bool(features.check("webp")), "files": {}, "resize": []}
base = drawing()
base.convert("CMYK").save(os.path.join(here, "cmyk.jpg"), quality=92)           # Adobe APP14, inverted CMYK
rgba = base.convert("RGBA")
a = Image.new("L", (W, H))
a.putdata([(x * 255) // (W - 1) if y < H // 2 else 0 for y in range(H) for x in range(W)])
rgba.putalpha(a)
rgba.save(os.path.join(here, "rgba_alpha0.png"))                                  # colour under alpha 0 is kept
base.convert("LA").save(os.path.join(here, "gray_alpha.png"))
base.convert("P", palette=Image.ADAPTIVE, colors=32).save(os.path.join(here, "palette.png"))
base.save(os.path.join(here, "progressive.jpg"), quality=90, progressive=True, subsampling=2)
if out["webp"]:
    base.save(os.path.join(here, "lossless.webp"), lossless=True)
    base.save(os.path.join(here, "lossy.webp"), quality=80)
exif = Image.Exif()
exif[0x0112] = 6                                                                  # rotate 90 degrees clockwise for display
base.save(os.path.join(here, "exif6.png"), exif=exif.tobytes())
exif[0x0112] = 3
base.save(os.path.join(here, "exif3_q90.jpg"), exif=exif.tobytes(), quality=90)
if out["webp"]:
    exif[0x0112] = 8
    base.save(os.path.join(here, "exif8_lossless.webp"), exif=exif.tobytes(), lossless=True)
for f in sorted(os.listdir(here)):
    if f.split(".")[-1] in ("jpg", "png", "webp"):
        out["files"][f] = rgb_info(os.path.join(here, f))



def lcg_bytes(n, seed):
    """Source pixels the C# test regenerates: x = (x * 1103515245 + 12345) mod 2^31, byte = (x >> 16) & 255."""
    x, out = seed, bytearray(n)
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (x >> 16) & 0xFF
    return bytes(out)


for k, (w, h, ow, oh) in enumerate([(37, 23, 91, 57), (37, 23, 5, 3), (300, 7, 17, 29), (64, 48, 64, 97), (640, 480, 341, 256), (99, 77, 99, 31)]):
    src = Image.frombytes("RGB", (w, h), lcg_bytes(w * h * 3, k + 1))
    out["resize"].append({"lcg_seed": k + 1, "width": w, "height": h, "out_width": ow, "out_height": oh,
                          "sha256_of_resized": hashlib.sha256(src.resize((ow, oh), Image.BICUBIC).tobytes()).hexdigest()})
with open(os.path.join(here, "expected.json"), "w") as f:
    json.dump(out, f, indent=1)
