"""OCR scoring as ../shared/data/README.md describes it, shared by eval-ocr and bench-ocr.

- Text of an image: its lines in reading order (rows by vertical centre, then left to
  right), joined by spaces.
- CER: edit distance / reference length over the whole set, upper-cased with all white
  space removed; CER_strict without that normalisation.
- Line recall: share of ground-truth lines (normalised alike) that match a predicted line
  with similarity >= 90 (rapidfuzz ratio) or lie inside a longer predicted line.
"""
import glob, json, os

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


def load_truth(data_dir, name):
    """{image path: [(text, box or None)]} of one evaluation set."""
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
