"""G-code for the printing tests and the benchmark: synthetic prints and their command lists."""

from __future__ import annotations

import random
from pathlib import Path

from app.printing.marlin import clean_command


def synthetic_gcode(
    path: Path, lines: int = 20000, seed: int = 7, *, wait_for_heat: bool = True
) -> Path:
    """Realistic-looking G-code (start, layers of perimeter moves with retracts, end).

    Without ``wait_for_heat`` the print sets its temperatures but does not wait for them
    (no M190/M109): OctoPrint's virtual printer heats 10 °C/s in real time, 20 s a print.
    """
    rng = random.Random(seed)
    waits = ["M190 S60", "M109 S210"] if wait_for_heat else []
    out = [
        "; synthetic test print",
        "M140 S60",
        "M104 S210",
        *waits,
        "G28",
        "G90",
        "M83",
        "G92 E0",
        "G1 Z0.3 F3000",
    ]
    z, layer = 0.2, 0
    while len(out) < lines - 6:
        layer += 1
        out += [";LAYER_CHANGE", f";Z:{z:.2f}", f"G1 Z{z:.2f} F720"]
        if layer == 2:
            out.append("M106 S255")
        for _ in range(rng.randint(150, 400)):
            x, y = 100 + rng.uniform(-15, 15), 100 + rng.uniform(-15, 15)
            out.append(f"G1 X{x:.3f} Y{y:.3f} E{rng.uniform(0.01, 0.08):.5f} F1800")
            if rng.random() < 0.05:
                out += ["G1 E-0.8 F2100", f"G1 X{x + 2:.3f} Y{y:.3f} F9000", "G1 E0.8 F2100"]
        z = round(z + 0.2, 2)
    out += ["M107", "M104 S0", "M140 S0", "G1 Z50 F600", "M84"]
    path.write_text("\n".join(out) + "\n", encoding="ascii")
    return path


def commands_of(path: Path) -> list[str]:
    """The commands a host must send for ``path`` (comments and blank lines removed)."""
    found = []
    for line in path.read_text(encoding="ascii", errors="replace").splitlines():
        command = clean_command(line)
        if command:
            found.append(command)
    return found
