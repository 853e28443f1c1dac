// A job's page: polls the job from the API (session cookie) and draws its progress bar
// and training curves (loss, and the held-out metric) as SVG, until it has finished.
(function () {
  const box = document.getElementById("job");
  if (!box) return;
  const el = (id) => document.getElementById(id);
  const svgNS = "http://www.w3.org/2000/svg";
  const metric = box.dataset.metric;
  const finished = ["review", "released", "rejected", "failed"];

  function line(svg, points, colour, label, slot) {
    if (!points.length) return;
    const W = 720, H = 260, L = 48, R = 16, T = 20, B = 30;
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
    const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const py = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    const path = document.createElementNS(svgNS, "polyline");
    path.setAttribute("points", points.map((p) => px(p[0]) + "," + py(p[1])).join(" "));
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", colour);
    path.setAttribute("stroke-width", "2");
    path.dataset.series = label;
    svg.appendChild(path);
    const text = document.createElementNS(svgNS, "text");
    text.setAttribute("x", L + slot * 220);
    text.setAttribute("y", 14);
    text.setAttribute("fill", colour);
    text.setAttribute("font-size", "12");
    text.textContent = label + " " + ys[0].toPrecision(3) + " → " + ys[ys.length - 1].toPrecision(3);
    svg.appendChild(text);
  }

  function draw(history) {
    const svg = el("job-curve");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.dataset.points = history.length;
    const step = (row, i) => row.round || row.step || row.epoch || i + 1;
    line(svg, history.filter((r) => r.loss !== undefined).map((r, i) => [step(r, i), r.loss]), "#2f5fb3", "loss", 0);
    line(svg, history.filter((r) => r[metric] !== undefined).map((r, i) => [step(r, i), r[metric]]), "#b3261e", metric, 1);
    line(svg, history.filter((r) => r.epsilon !== undefined).map((r, i) => [step(r, i), r.epsilon]), "#3c7d3a", "ε", 2);
  }

  async function poll() {
    let job;
    try {
      const response = await fetch(box.dataset.api, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.status);
      job = await response.json();
    } catch (err) {
      setTimeout(poll, 3000);
      return;
    }
    if (job.progress) { el("job-bar").value = Math.round(job.progress.percent); el("job-stage").textContent = job.progress.stage; }
    el("job-status").className = "status " + job.status;
    el("job-status").dataset.status = job.status;
    if (job.status_reason) { el("job-reason").hidden = false; el("job-reason").textContent = job.status_reason; }
    if (job.epsilon_spent) el("job-epsilon").textContent = job.epsilon_spent;
    draw(job.history || []);
    if (!finished.includes(job.status)) setTimeout(poll, 1000);
    else if (!finished.includes(initial)) window.location.reload();  // show the checks, metrics and forms
  }
  const initial = el("job-status").className.replace("status ", "");
  draw(JSON.parse(el("job-history").textContent));
  poll();
})();
