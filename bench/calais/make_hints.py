"""The colourist's hints for the Calais 1906 film (Debian python-nbsphinx-doc): a few
strokes on frames 60 and 240, as a colourist would paint them over the frame in any
paint program, saved as RGBA PNGs (transparent except the strokes). Run once; the PNGs
are committed beside this script.

    .venv/bin/python bench/calais/make_hints.py
"""

import os

import cv2
import numpy as np

W, H = 214, 160
HERE = os.path.dirname(os.path.abspath(__file__))

WOOD = (150, 112, 76)  # weathered planks of the board track
GRASS = (96, 122, 62)
BUSH = (68, 98, 50)
SKY = (172, 192, 216)
SAND = (196, 176, 138)  # sandbags at the verge
EARTH = (104, 84, 62)
BLUE = (58, 68, 100)  # French racing blue, dark and dusty
DUST = (204, 198, 188)  # the dust cloud: a warm light grey that holds the car's blue back

STROKES = {
    60: [(WOOD, [(60, 120), (190, 80)]), (WOOD, [(90, 150), (200, 120)]), (WOOD, [(70, 70), (150, 62)]),
         (GRASS, [(10, 25), (90, 30)]), (BUSH, [(160, 30), (205, 40)]), (SKY, [(60, 2), (150, 2)]),
         (SAND, [(12, 122), (28, 126)]), (EARTH, [(5, 150), (25, 140)])],
    240: [(WOOD, [(60, 125), (190, 90)]), (WOOD, [(80, 150), (200, 130)]), (WOOD, [(40, 75), (130, 68)]),
          (BUSH, [(165, 30), (205, 45)]), (GRASS, [(110, 35), (140, 40)]), (SAND, [(12, 125), (28, 128)]),
          (EARTH, [(5, 150), (25, 142)]), (BLUE, [(64, 46), (68, 45)]), (DUST, [(15, 25), (50, 30)]),
          (DUST, [(85, 40), (100, 30)])],
}


def main() -> None:
    for frame, strokes in STROKES.items():
        img = np.zeros((H, W, 4), np.uint8)
        for colour, (a, b) in strokes:
            cv2.line(img, a, b, (*colour[::-1], 255), 3)  # BGRA
        path = os.path.join(HERE, f"hints-{frame:04d}.png")
        cv2.imwrite(path, img)
        print(path)


if __name__ == "__main__":
    main()
