from test_browser import browser, lab  # noqa: F401
from test_browser import _open_and_run_all, ARTIFACTS


def test_names(lab, browser):
    nb = "07_parallel_training.ipynb"
    page = _open_and_run_all(browser, f"{lab['base']}/lab/workspaces/n{nb[:2]}/tree/{nb}"
                             f"?reset&token={lab['token']}", 400, None)
    names = page.evaluate("[...document.querySelectorAll('.js-plotly-plot')].map(g => (g.data||[]).map(t => t.name))")
    for n in names:
        print(n)
    page.close()
