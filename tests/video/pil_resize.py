#!/usr/bin/env python3
"""Resizes a raw RGB24 image with Pillow, for the C++ transform tests.

usage: pil_resize.py IN.rgb WIDTH HEIGHT OUT_WIDTH OUT_HEIGHT bicubic|bilinear OUT.rgb
"""
import sys

from PIL import Image

src, w, h, ow, oh, method, dst = sys.argv[1:8]
with open(src, "rb") as f:
    img = Image.frombytes("RGB", (int(w), int(h)), f.read())
filt = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[method]
with open(dst, "wb") as f:
    f.write(img.resize((int(ow), int(oh)), filt).tobytes())
