"""`totalseg view`: a local, read-only browser viewer for a CT and its labels, or a whole study.

from totalseg.viewer import ViewerServer, open_catalog
server = ViewerServer(open_catalog("ct.nii.gz", "seg.nii.gz"))   # 127.0.0.1, random port
print(server.url)                                                 # http://127.0.0.1:PORT/<token>/
server.serve_forever()

The page is NiiVue (vendored in `static/niivue/`, no network access at run time). Only the
standard library's HTTP server is used; nothing here imports torch.
"""

from totalseg.viewer.cases import CaseCache, CaseSpec, LoadedCase, load_case
from totalseg.viewer.catalog import Catalog, open_case, open_catalog, open_study
from totalseg.viewer.server import ViewerServer, is_loopback

__all__ = [
    "CaseCache",
    "CaseSpec",
    "Catalog",
    "LoadedCase",
    "ViewerServer",
    "is_loopback",
    "load_case",
    "open_case",
    "open_catalog",
    "open_study",
]
