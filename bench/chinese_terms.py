"""Chinese catalogue titles: character bigrams (what `operators.content` does) against a word segmenter
(jieba, the most used one on PyPI), measured side by side on the same titles in one run.

The titles are this project's own: Taobao-style strings without spaces, each a shuffle of a category's
product words (with synonyms: 耳机 / 耳麦), modifiers shared by every category (新款, 夏季, 黑色 ...)
and a brand. Measured: for each title, is its nearest other title (TF-IDF cosine, the job's own
`tfidf_vector` and `cosine`) of the same category (precision@1), and the mean precision@5; then terms
per title and titles per second for each tokeniser. A single seed, printed, so the run can be repeated.

Last line: p1_bigrams=<a> p1_jieba=<b> p5_bigrams=<c> p5_jieba=<d> titles_per_s_bigrams=<e> titles_per_s_jieba=<f>
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from operators.content import cosine, tfidf_vector, title_words  # noqa: E402

CATEGORIES = {
    "earphones": (["蓝牙耳机", "无线耳机", "耳麦", "入耳式耳机"], ["降噪", "运动", "超长续航", "游戏"]),
    "tshirts": (["短袖T恤", "纯棉体恤", "圆领短袖", "半袖上衣"], ["宽松", "纯棉", "印花", "情侣"]),
    "pans": (["不粘锅", "平底锅", "炒锅", "煎锅"], ["麦饭石", "不锈钢", "电磁炉通用", "家用"]),
    "phones": (["智能手机", "手机", "全网通手机", "5G手机"], ["大屏", "拍照", "学生", "老人机"]),
    "shoes": (["运动鞋", "跑步鞋", "休闲鞋", "板鞋"], ["透气", "网面", "增高", "减震"]),
    "backpacks": (["双肩包", "书包", "背包", "电脑包"], ["大容量", "防水", "旅行", "商务"]),
    "lipsticks": (["口红", "唇膏", "唇釉", "哑光口红"], ["滋润", "显白", "持久", "不掉色"]),
    "kettles": (["电热水壶", "烧水壶", "保温壶", "电水壶"], ["不锈钢", "家用", "自动断电", "大容量"]),
}
SHARED = ["新款", "夏季", "黑色", "白色", "男", "女", "正品", "包邮", "2024", "官方旗舰店", "学生", "家用"]
BRANDS = ["小米", "华为", "安踏", "李宁", "苏泊尔", "美的", "完美日记", "南极人"]


def titles(per_category: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for category, (products, modifiers) in CATEGORIES.items():
        for _ in range(per_category):
            words = ([rng.choice(products)] + rng.sample(modifiers, 2) + rng.sample(SHARED, 3)
                     + [rng.choice(BRANDS)])
            rng.shuffle(words)
            out.append(("".join(words), category))
    return out


def jieba_words(title: str) -> list[str]:
    import jieba

    return [w for w in jieba.lcut(title.lower()) if w.strip() and not w.isdigit()]


def vectors(docs: list[str], tokenise) -> list[tuple[tuple[str, float], ...]]:
    counts = [Counter(tokenise(doc)) for doc in docs]
    df = Counter(term for c in counts for term in c)
    return [tfidf_vector(c, df, len(docs), 64) for c in counts]


def precision(vecs, labels, k: int) -> float:
    total = 0.0
    for i, v in enumerate(vecs):
        ranked = sorted((j for j in range(len(vecs)) if j != i), key=lambda j: (-cosine(v, vecs[j]), j))[:k]
        total += sum(labels[j] == labels[i] for j in ranked) / k
    return total / len(vecs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-category", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    import jieba

    jieba.setLogLevel(60)
    jieba.initialize()  # its dictionary loads once per process: not part of the per-title rate
    data = titles(args.per_category, args.seed)
    docs, labels = [t for t, _ in data], [c for _, c in data]
    print(f"{len(docs)} titles, {len(CATEGORIES)} categories, seed {args.seed}; e.g. {docs[0]} -> "
          f"bigrams {title_words(docs[0])[:6]}..., jieba {jieba_words(docs[0])}")
    results = {}
    for name, tokenise in (("bigrams", title_words), ("jieba", jieba_words)):
        started = time.perf_counter()
        for _ in range(5):
            for doc in docs:
                tokenise(doc)
        rate = 5 * len(docs) / (time.perf_counter() - started)
        vecs = vectors(docs, tokenise)
        terms = sum(len(tokenise(d)) for d in docs) / len(docs)
        results[name] = (precision(vecs, labels, 1), precision(vecs, labels, 5), rate)
        print(f"{name:<8} precision@1 {results[name][0]:.3f}  precision@5 {results[name][1]:.3f}  "
              f"{terms:.1f} terms per title  {rate:,.0f} titles/s")
    (b1, b5, br), (j1, j5, jr) = results["bigrams"], results["jieba"]
    print(f"p1_bigrams={b1:.3f} p1_jieba={j1:.3f} p5_bigrams={b5:.3f} p5_jieba={j5:.3f} "
          f"titles_per_s_bigrams={br:.0f} titles_per_s_jieba={jr:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
