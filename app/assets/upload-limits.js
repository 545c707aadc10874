/* Upload caps checked in the browser, before a byte is read or sent (issue 6).
 *
 * Why: dcc.Upload drops a file larger than its max_size without a word and sends the others;
 * files each under the cap but together over it are all sent, and a POST larger than Flask's
 * MAX_CONTENT_LENGTH fails with HTTP 413, seen only in the browser console. So this script
 * listens first (on window, capture phase) to the file dialog's `change` and to `drop` on
 * #upload:
 *
 * - a selection over a cap is stopped there: dcc.Upload never sees it, nothing is read or sent,
 *   and the refusal is written to #upload-message;
 * - a dropped folder cannot be sized before its entries are walked (asynchronously), so the
 *   drop is always taken over: the entries are walked (metadata only), checked, and, within the
 *   caps, read and handed to dcc.Upload's contents/filename/last_modified with the folder path
 *   in each name, as dcc.Upload itself does;
 * - anything else goes on to dcc.Upload untouched.
 *
 * The caps are the data attributes of #upload-limits (app/main.py, upload_hint); the server
 * checks them again (app/upload.py, save_upload), and its wording is mirrored here.
 */
(function () {
    "use strict";

    const MB = 1024 * 1024;

    function mb(bytes) {
        return `${(bytes / MB).toFixed(1)} MB`;
    }

    /* {maxBytes, maxFiles} from #upload-limits, or null before the layout is rendered. */
    function uploadCaps() {
        const el = document.getElementById("upload-limits");
        if (!el) {
            return null;
        }
        return {maxBytes: Number(el.dataset.maxBytes), maxFiles: Number(el.dataset.maxFiles)};
    }

    /* The refusal for a list of {name, size (bytes)}, or null when it is within the caps. */
    function refusal(files, caps) {
        if (files.length > caps.maxFiles) {
            return `Upload refused: ${files.length} files, more than the ${caps.maxFiles} ` +
                "one upload may hold; nothing was sent. Upload one patient at a time.";
        }
        const total = files.reduce((sum, f) => sum + f.size, 0);
        if (total > caps.maxBytes) {
            const what = files.length === 1 ? `'${files[0].name}'`
                : `the upload (${files.length} files)`;
            return `Upload refused: ${what} is ${mb(total)}, more than the ` +
                `${mb(caps.maxBytes)} cap; nothing was sent. Upload one patient ` +
                "(CT, RTSTRUCT, RTPLAN, RTDOSE) as a zip.";
        }
        return null;
    }

    /* The same alert the server's upload callback shows (dbc.Alert, id upload-error). */
    function showRefusal(text) {
        window.dash_clientside.set_props("upload-message", {
            children: {
                type: "Alert",
                namespace: "dash_bootstrap_components",
                props: {id: "upload-error", children: text, color: "danger",
                        dismissable: true, className: "mb-2"},
            },
        });
    }

    function stop(event) {
        event.preventDefault();  // a drop the page does not take would open the file
        event.stopImmediatePropagation();
    }

    /* The drop zone counts drag enters and leaves; a drop it never saw would leave it lit. */
    function resetDragState(zone) {
        for (const el of [zone, ...zone.querySelectorAll("*")]) {
            el.dispatchEvent(new DragEvent("dragleave", {bubbles: true}));
        }
    }

    /* [{file, name}] below a FileSystemEntry; names carry the folder path (as dcc.Upload). */
    function entryFiles(entry, path) {
        if (entry.isFile) {
            return new Promise((resolve, reject) => {
                entry.file((file) => resolve([{file, name: path + file.name}]), reject);
            });
        }
        if (!entry.isDirectory) {
            return Promise.resolve([]);
        }
        const reader = entry.createReader();
        const found = [];
        return new Promise((resolve, reject) => {
            const readBatch = () => reader.readEntries(async (entries) => {
                try {
                    if (entries.length === 0) {
                        resolve(found);
                        return;
                    }
                    for (const child of entries) {
                        found.push(...await entryFiles(child, `${path}${entry.name}/`));
                    }
                    readBatch();  // a directory reader returns at most 100 entries at a time
                } catch (err) {
                    reject(err);
                }
            }, reject);
            readBatch();
        });
    }

    function readDataUrl(file) {
        return new Promise((resolve, reject) => {
            const reader = new FileReader();
            reader.onload = () => resolve(reader.result);
            reader.onerror = () => reject(reader.error);
            reader.readAsDataURL(file);
        });
    }

    async function uploadDroppedEntries(entries, caps) {
        const found = [];
        for (const entry of entries) {
            found.push(...await entryFiles(entry, ""));
        }
        if (found.length === 0) {
            showRefusal("Upload refused: the dropped folder holds no files.");
            return;
        }
        const text = refusal(found.map((f) => ({name: f.name, size: f.file.size})), caps);
        if (text) {
            showRefusal(text);
            return;
        }
        const contents = [];
        for (const f of found) {
            contents.push(await readDataUrl(f.file));
        }
        window.dash_clientside.set_props("upload", {
            contents,
            filename: found.map((f) => f.name),
            last_modified: found.map((f) => f.file.lastModified / 1000),
        });
    }

    function onFileDialogChange(event) {
        const input = event.target;
        if (!(input instanceof HTMLInputElement) || input.type !== "file"
            || !input.closest("#upload")) {
            return;
        }
        const caps = uploadCaps();
        const text = caps && refusal(Array.from(input.files || []), caps);
        if (!text) {
            return;
        }
        stop(event);
        input.value = "";  // choosing the same file again fires `change` again
        showRefusal(text);
    }

    function onDrop(event) {
        const zone = event.target instanceof Element ? event.target.closest("#upload") : null;
        const caps = uploadCaps();
        if (!zone || !caps || !event.dataTransfer) {
            return;
        }
        // entries must be taken while the event runs: the drop's data is locked afterwards
        const entries = Array.from(event.dataTransfer.items || [])
            .filter((item) => item.kind === "file" && item.webkitGetAsEntry)
            .map((item) => item.webkitGetAsEntry())
            .filter(Boolean);
        if (entries.some((entry) => entry.isDirectory)) {
            stop(event);
            resetDragState(zone);
            uploadDroppedEntries(entries, caps).catch((err) => showRefusal(
                `Upload refused: the dropped folder could not be read (${err}).`));
            return;
        }
        const text = refusal(Array.from(event.dataTransfer.files || []), caps);
        if (!text) {
            return;
        }
        stop(event);
        resetDragState(zone);
        showRefusal(text);
    }

    window.addEventListener("change", onFileDialogChange, true);
    window.addEventListener("drop", onDrop, true);
})();
