"""The references section: the full citation of every method the page uses."""
from __future__ import annotations

from robustviz.report._context import Context
from robustviz.report._sections import Section

#: Full references of the methods the report uses, by key.
CITATIONS = {
    "bui2021": "A. Bui, T. Le, H. Zhao, P. Montague, S. Camtepe, D. Phung. Understanding and "
               "Achieving Efficient Robustness with Adversarial Supervised Contrastive "
               "Learning. arXiv:2101.10027, 2021.",
    "madry2018": "A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu. Towards Deep Learning "
                 "Models Resistant to Adversarial Attacks. ICLR 2018.",
    "goodfellow2015": "I. J. Goodfellow, J. Shlens, C. Szegedy. Explaining and Harnessing "
                      "Adversarial Examples. ICLR 2015.",
    "athalye2018": "A. Athalye, N. Carlini, D. Wagner. Obfuscated Gradients Give a False Sense "
                   "of Security: Circumventing Defenses to Adversarial Examples. ICML 2018.",
    "zhou2023": "N. Zhou, N. Wang, D. Liu, D. Zhou, X. Gao. Robust Representation Learning via "
                "Asymmetric Negative Contrast and Reverse Attention. arXiv:2310.03358, 2023.",
    "wilson1927": "E. B. Wilson. Probable Inference, the Law of Succession, and Statistical "
                  "Inference. Journal of the American Statistical Association 22(158), 1927.",
    "vandermaaten2008": "L. van der Maaten, G. Hinton. Visualizing Data using t-SNE. Journal of "
                        "Machine Learning Research 9, 2008.",
    "mcinnes2018": "L. McInnes, J. Healy, J. Melville. UMAP: Uniform Manifold Approximation and "
                   "Projection for Dimension Reduction. arXiv:1802.03426, 2018.",
}


def section(ctx: Context) -> Section:
    keys = ["madry2018", "goodfellow2015", "bui2021", "wilson1927",
            "vandermaaten2008" if ctx.embed_method == "tsne" else "mcinnes2018"]
    if any(ctx.adaptive.values()):
        keys += ["athalye2018", "zhou2023"]
    return Section(title="References", text=[CITATIONS[k] for k in keys])

