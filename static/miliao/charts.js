// Draws every [data-chart] element with Apache ECharts (SVG renderer). The element's
// data-chart names a json_script holding the chart (portal/charts.py builds it):
//   {x: {name, type: "value"|"time"|"category", categories?}, y: {name},
//    series: [{name, kind: "line"|"step"|"bar", dashed?, field?, data: [[x, y], ...]}]}
// A series with a `field` is redrawn from a job's history rows by MiliaoCharts.fromHistory
// (job.js, while the job runs). No inline script: the page's CSP allows none.
(function () {
  if (typeof echarts === "undefined") return;
  const drawn = {};
  const colours = ["#2f5fb3", "#b3261e", "#3c7d3a", "#8a5a00", "#6b3fa0"];

  function axis(a, isX) {
    const out = {
      type: a.type || "value", name: a.name || "", nameLocation: "middle", nameGap: isX ? 28 : 44,
      scale: !isX && a.type !== "category" && !a.zero, axisLabel: { hideOverlap: true },
    };
    if (a.categories) out.data = a.categories;
    if (isX && out.type === "value" && a.whole) out.minInterval = 1;
    return out;
  }

  function option(spec) {
    return {
      animation: false,
      color: colours,
      grid: { left: 64, right: 20, top: spec.series.length > 1 ? 36 : 20, bottom: 44, containLabel: false },
      legend: spec.series.length > 1 ? { top: 0 } : undefined,
      tooltip: { trigger: spec.x.type === "category" ? "axis" : "item", renderMode: "richText" },  // drawn in the chart, not as HTML with inline styles the CSP refuses
      xAxis: axis(spec.x, true),
      yAxis: axis(spec.y, false),
      series: spec.series.map((s) => ({
        name: s.name,
        type: s.kind === "bar" ? "bar" : "line",
        step: s.kind === "step" ? "end" : false,
        showSymbol: s.kind !== "step" || s.data.length < 60,
        symbolSize: 5,
        lineStyle: s.dashed ? { type: "dashed" } : undefined,
        barCategoryGap: "8%",
        data: s.data,
      })),
    };
  }

  function draw(el) {
    const source = document.getElementById(el.dataset.chart);
    if (!source) return;
    const spec = JSON.parse(source.textContent);
    const chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption(option(spec));
    drawn[el.dataset.chart] = { chart: chart, spec: spec };
    el.dataset.drawn = "true";
  }

  // The x of a history row: a federated round, an epoch, or its position.
  function step(row, i) {
    if (row.round !== undefined) return row.round;
    if (row.epoch !== undefined) return row.epoch;
    if (row.step !== undefined) return row.step;
    return i + 1;
  }

  window.MiliaoCharts = {
    fromHistory: function (history) {
      Object.values(drawn).forEach(({ chart, spec }) => {
        if (!spec.series.some((s) => s.field)) return;
        spec.series.forEach((s) => {
          if (!s.field) return;
          s.data = history.map((row, i) => [step(row, i), row[s.field]]).filter((p) => typeof p[1] === "number");
        });
        chart.setOption(option(spec));
      });
    },
  };

  document.querySelectorAll("[data-chart]").forEach(draw);
  window.addEventListener("resize", () => Object.values(drawn).forEach(({ chart }) => chart.resize()));
})();
