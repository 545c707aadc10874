/* Lesion page: the regimen header row of #comparison-table (regimen, recommended / chosen /
 * planned marks, the "own" and "with others" verdicts) stays in view below the sticky summary
 * (#lesion-summary-box) while the organ rows scroll by.
 *
 * Why a script: `position: sticky; top: …` on the header cells would stick them to the nearest
 * scroll container, and the table sits in a box that scrolls sideways (.table-responsive,
 * overflow-x: auto, so that a lesion with many regimens keeps its structure column in view):
 * that box, not the page, is the scroll container, and it never scrolls vertically. So the
 * header row is moved down by what the page has scrolled past it (translateY), never below the
 * table's last row; its cells keep their sideways stickiness. Computed from the live positions
 * on each scroll, resize and redraw, so the summary's height (it wraps, shows messages) needs
 * no constant here.
 */
(function () {
    var pending = false;

    function update() {
        pending = false;
        var table = document.getElementById('comparison-table');
        var head = table && table.tHead;
        if (!head) { return; }
        var summary = document.getElementById('lesion-summary-box');
        var below = summary ? Math.max(0, summary.getBoundingClientRect().bottom) : 0;
        var rect = table.getBoundingClientRect();
        var shift = Math.max(0, Math.min(below - rect.top, rect.height - head.offsetHeight));
        var value = shift > 0 ? 'translateY(' + shift.toFixed(1) + 'px)' : '';
        if (head.style.transform !== value) { head.style.transform = value; }
        head.classList.toggle('head-stuck', shift > 0);
    }

    function schedule() {
        if (!pending) { pending = true; window.requestAnimationFrame(update); }
    }

    window.addEventListener('scroll', schedule, {passive: true});
    window.addEventListener('resize', schedule);
    /* Dash redraws the table (a new <thead>) on each choice and on "show all constraints" */
    new MutationObserver(schedule).observe(document.documentElement,
                                           {childList: true, subtree: true});
}());
