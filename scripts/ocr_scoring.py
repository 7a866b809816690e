"""OCR scoring as ../shared/data/README.md describes it, shared by eval-ocr and bench-ocr.

- Text of an image: its lines in reading order (rows by vertical centre, then left to
  right), joined by spaces.
- CER: edit distance / reference length over the whole set, upper-cased with all white
  space removed; CER_strict without that normalisation.
- Line recall: share of ground-truth lines (normalised alike) that match a predicted line
  with similarity >= 90 (rapidfuzz ratio) or lie inside a longer predicted line.
"""
import glob, json, math, os, shutil, subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RENDER = os.path.join(ROOT, "target", "debug", "docusnap-render")

try:
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz import fuzz

    def distance(a, b):
        return Levenshtein.distance(a, b)

    def ratio(a, b):
        return fuzz.ratio(a, b)
except ImportError:  # plain-Python fallback, slower but the same figures
    def distance(a, b):
        previous = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            current = [i]
            for j, cb in enumerate(b, 1):
                current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
            previous = current
        return previous[-1]

    def ratio(a, b):
        total = len(a) + len(b)
        if total == 0:
            return 100.0
        # rapidfuzz's ratio is the normalised Indel similarity: 2 * LCS / total.
        m = [0] * (len(b) + 1)
        for ca in a:
            prev = 0
            for j, cb in enumerate(b, 1):
                prev, m[j] = m[j], prev + 1 if ca == cb else max(m[j], m[j - 1])
        return 200.0 * m[-1] / total


def normalise(text):
    return "".join(text.upper().split())


def reading_order(lines):
    """lines: [(text, box or None)]; rows by vertical centre, then left to right."""
    if not lines or any(box is None for _, box in lines):
        return [text for text, _ in lines]
    items = []
    for text, box in lines:
        ys = [p[1] for p in box]
        xs = [p[0] for p in box]
        items.append(((min(ys) + max(ys)) / 2, max(ys) - min(ys), min(xs), text))
    items.sort()
    rows, current = [], []
    for item in items:
        if current and item[0] - current[-1][0] > max(4.0, 0.5 * min(item[1], current[-1][1])):
            rows.append(current)
            current = []
        current.append(item)
    if current:
        rows.append(current)
    return [text for row in rows for _, _, _, text in sorted(row, key=lambda i: i[2])]


# Rendered Chinese and English document pages (invoices with item tables, application
# forms, notices; CJK labels with English beside them), written by docusnap-render
# --mixed-pages with their lines' boxes: the set the project never saw before issue 27.
MIXED_SET, MIXED_PAGES = "mixed_zh", 40
# docusnap-render's MIXED_VERSION: pages of another version are rendered again.
MIXED_VERSION = "2"


def load_truth(data_dir, name):
    """{image path: [(text, box or None)]} of one evaluation set (MIXED_SET: rendered here)."""
    if name == MIXED_SET:
        data_dir = os.path.join(ROOT, "target", "eval-rendered")
        version_file = os.path.join(data_dir, name, "version")
        version = open(version_file).read().strip() if os.path.exists(version_file) else None
        if version != MIXED_VERSION or len(glob.glob(os.path.join(data_dir, name, "gt", "*.json"))) != MIXED_PAGES:
            shutil.rmtree(os.path.join(data_dir, name), ignore_errors=True)
            subprocess.run(["cargo", "build", "-q", "-p", "docusnap-tests", "--bin", "docusnap-render"], check=True, cwd=ROOT)
            subprocess.run([RENDER, os.path.join(data_dir, name), "--mixed-pages", str(MIXED_PAGES)], check=True)
    truth = {}
    for gt in sorted(glob.glob(os.path.join(data_dir, name, "gt", "*.json"))):
        stem = os.path.splitext(os.path.basename(gt))[0]
        images = glob.glob(os.path.join(data_dir, name, "images", stem + ".*"))
        if not images:
            continue
        doc = json.load(open(gt))
        if "form" in doc:  # FUNSD entities
            lines = [(e["text"], [[e["box"][0], e["box"][1]], [e["box"][2], e["box"][3]]]) for e in doc["form"] if e["text"].strip()]
        else:
            lines = []
            for line in doc["lines"]:
                box = line.get("box")
                if box is not None:
                    box = [[box[i], box[i + 1]] for i in range(0, len(box), 2)]
                lines.append((line["text"], box))
        truth[images[0]] = lines
    return truth


def score(truth, predicted):
    """truth, predicted: {image: [(text, box)]} -> dict of CER, CER_strict, line recall."""
    edits = edits_strict = length = length_strict = 0
    found = total = 0
    for image, gt_lines in truth.items():
        pred_lines = predicted.get(image, [])
        ref = " ".join(reading_order(gt_lines))
        hyp = " ".join(reading_order(pred_lines))
        edits += distance(normalise(ref), normalise(hyp))
        length += len(normalise(ref))
        edits_strict += distance(ref, hyp)
        length_strict += len(ref)
        hyps = [normalise(t) for t, _ in pred_lines]
        for text, _ in gt_lines:
            want = normalise(text)
            if not want:
                continue
            total += 1
            if any(want in h or ratio(want, h) >= 90 for h in hyps):
                found += 1
    return {
        "CER": edits / max(length, 1),
        "CER_strict": edits_strict / max(length_strict, 1),
        "line_recall": found / max(total, 1),
    }


def upright_box(box, width, height, orientation):
    """A box of a page docusnap-ocr turned (its "orientation": rotation, skew) in the
    upright, levelled frame it read the page in: the same map as PageText::upright."""
    rotation, skew = orientation.get("rotation", 0), orientation.get("skew", 0.0)
    w, h = width, height
    uw, uh = (w, h) if rotation in (0, 180) else (h, w)
    c, s = math.cos(math.radians(skew)), math.sin(math.radians(skew))
    out = []
    for x, y in box:
        x, y = {0: (x, y), 90: (h - y, x), 180: (w - x, h - y), 270: (y, w - x)}[rotation]
        dx, dy = x - uw / 2, y - uh / 2
        out.append([uw / 2 + dx * c + dy * s, uh / 2 - dx * s + dy * c])
    return out


# The turned set: docusnap-render --turned writes each variant (tests/src/bin/docusnap-render.rs).
TURNS = ["r90", "r180", "r270", "exif-upright", "exif-turned", "skew+10", "skew-10", "skew-back"]


def turned_set(truth, name):
    """{variant: {variant image: upright image}}, the variants written once."""
    out = os.path.join(ROOT, "target", "eval-turned", name)
    missing = [i for i in truth if not all(os.path.exists(variant_path(out, t, i)) for t in TURNS)]
    if missing:
        subprocess.run(["cargo", "build", "-q", "-p", "docusnap-tests", "--bin", "docusnap-render"], check=True, cwd=ROOT)
        subprocess.run([RENDER, out, "--turned", *missing], check=True)
    return {t: {variant_path(out, t, i): i for i in truth} for t in TURNS}


def variant_path(out, turn, image):
    return os.path.join(out, turn, os.path.splitext(os.path.basename(image))[0] + ".jpg")


def ocr_cache(name, models, count):
    """Where eval-extract keeps docusnap-ocr's output for `count` images of set `name` (a
    turned set's variant: "sroie-r90"); eval-ocr --turned writes it too, so that
    eval-extract --turned after it reads no image again."""
    return os.path.join(ROOT, "target", "eval-extract", f"{name}-{models}-{count}.jsonl")
