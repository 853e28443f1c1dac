// The provenance badge of a showcase result: asks the API to recompute every event of the
// result's lineage and check it against its anchor on the chain, and says what it found.
(function () {
  const box = document.getElementById("badge");
  if (!box) return;
  const out = document.getElementById("badge-result");
  document.getElementById("badge-verify").addEventListener("click", async () => {
    out.textContent = "…";
    try {
      const response = await fetch(box.dataset.api, { credentials: "same-origin", headers: { Accept: "application/json" } });
      const report = await response.json();
      if (!response.ok) throw new Error(report.detail || response.status);
      const roots = (report.roots || []).map((r) => "block " + r.block_number + " tx " + String(r.tx_hash || "").slice(0, 12)).join(", ");
      if (report.ok) {
        out.className = "ok";
        out.dataset.verified = "true";
        out.textContent = "✓ " + report.anchored + "/" + report.events + " events verified on chain " + roots;
      } else {
        out.className = "error";
        out.dataset.verified = "false";
        const findings = (report.findings || []).map((f) => f.message).join("; ");
        out.textContent = "✗ " + (findings || report.chain_error || (report.unanchored || []).length + " events not anchored yet");
      }
    } catch (err) {
      out.className = "error";
      out.textContent = "✗ " + err.message;
    }
  });
})();
