#!/usr/bin/env python3
"""The Python reference engines, driven like `docusnap-ocr`: one JSON line per image,
{"file", "lines": [{"text", "score", "box"}], "ms"}. Default settings, as the evaluation
data's README measured them.

    .venv-eval/bin/python scripts/ocr_reference.py --models ppocr-v4|ppocr-v6 IMAGE...

ppocr-v4 runs rapidocr_onnxruntime==1.4.4, ppocr-v6 runs rapidocr==3.10.0;
faster-paddle-small and faster-paddle-tiny run faster-paddle==1.0.4 (PP-OCRv6 small or
tiny, its own defaults; it gives axis-aligned boxes).
"""
import json, os, sys, time

# onnxruntime 1.31's telemetry uploader (see docusnap_ocr::runtime::DISABLE_TELEMETRY)
# stays off: it starts on import, so this comes first.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"


def load(models):
    if models == "ppocr-v4":
        from rapidocr_onnxruntime import RapidOCR
        engine = RapidOCR()

        def run(path):
            result, _ = engine(path)
            return [(box, text, score) for box, text, score in (result or [])]
    elif models.startswith("faster-paddle-"):
        from faster_paddle import OcrEngine
        engine = OcrEngine(model_size=models.removeprefix("faster-paddle-"))

        def run(path):
            with open(path, "rb") as f:
                bounds = engine.ocr(f.read())["bounds"]
            lines = []
            for _, b in sorted(bounds.items()):
                (x1, y1), (x2, y2) = b["topLeftCoord"], b["bottomRightCoord"]
                lines.append(([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], b["text"], b["confidence"]))
            return lines
    else:
        from rapidocr import RapidOCR
        engine = RapidOCR()

        def run(path):
            out = engine(path)
            if out.boxes is None:
                return []
            return list(zip(out.boxes.tolist(), out.txts, out.scores))
    return run


def main():
    args = sys.argv[1:]
    models = "ppocr-v4"
    if args[:1] == ["--models"]:
        models, args = args[1], args[2:]
    run = load(models)
    for path in args:
        started = time.perf_counter()
        lines = [{"text": text, "score": float(score), "box": [[float(x), float(y)] for x, y in box]}
                 for box, text, score in run(path)]
        ms = (time.perf_counter() - started) * 1000
        print(json.dumps({"file": path, "lines": lines, "ms": round(ms, 1)}, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
