"""The Qt layer. (Start-up, issue 16: faster imports of PySide6 and pyqtgraph, see fast_import.)"""

from hft_lab.ui import fast_import as _fast_import

_fast_import.install()
