// Interactive maps (Leaflet, served from /static/vendor/leaflet/), with no inline script.
//
// API: any element with the attribute data-map becomes a map once this file and Leaflet are
// loaded ({% map_assets %} loads both and the page's json_script "map-config"; see
// templates/portal/_map.html for the element). The element names its GeoJSON with either
//   data-map-src="URL"      fetched with the page's session (an endpoint that applies the
//                           download rules: portal/map_views.py), or
//   data-map-data="ID"      the id of a json_script element holding the collection.
// A collection with "classes" ([{min, max, colour}], features carrying "class") is drawn as
// a choropleth; otherwise features are coloured by their "kind". Every map gets zoom, a
// metric scale bar, a legend in the page's language and a popup per feature listing the
// attributes the endpoint sent. The basemap is the configured tile service, or else the
// platform's own open layers (config.basemapSrc) drawn as light lines under the data.
// When drawn, the element carries data-map-state="ready" and data-map-features="N";
// window.MiliaoMap.draw(element) draws one added later.
(function () {
  "use strict";
  if (typeof L === "undefined") return;
  const configElement = document.getElementById("map-config");
  const config = configElement ? JSON.parse(configElement.textContent) : { kinds: {}, labels: {} };
  const labels = config.labels || {};
  let basemapData = null;  // one fetch of the open layers per page, shared by its maps

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function popupContent(properties) {
    const table = element("table", "map-popup");
    Object.keys(properties || {}).forEach((name) => {
      if (name === "class") return;
      const value = properties[name];
      const row = table.insertRow();
      row.appendChild(element("th", "", name === "features" ? labels.features || name : name));
      row.appendChild(element("td", "", value === null ? "—" : String(value)));
    });
    return table;
  }

  function kindOf(feature) { return (feature.properties || {}).kind; }

  function style(collection) {
    const classes = collection.classes;
    if (classes) {
      return (feature) => {
        const c = classes[(feature.properties || {})["class"] || 0] || {};
        return { color: "#1d3557", weight: 0.6, fillColor: c.colour || "#41b6c4", fillOpacity: 0.6 };
      };
    }
    return (feature) => {
      const kind = (config.kinds || {})[kindOf(feature)];
      const colour = kind ? kind.colour : "#555555";
      return { color: colour, weight: 1.2, fillColor: colour, fillOpacity: 0.45 };
    };
  }

  function legendEntries(collection) {
    if (collection.classes) {
      if (collection.classes.length && collection.classes[0].min !== undefined) {
        return { title: labels.perCell, entries: collection.classes.map((c) => [c.colour, c.min === c.max ? String(c.min) : c.min + "–" + c.max]) };
      }
      return { title: labels.legend, entries: collection.classes.map((c) => [c.colour, labels.covered]) };
    }
    const seen = [];
    collection.features.forEach((f) => { const k = kindOf(f); if (!seen.includes(k)) seen.push(k); });
    const kinds = config.kinds || {};
    return { title: labels.legend, entries: seen.map((k) => kinds[k] ? [kinds[k].colour, kinds[k].label] : ["#555555", labels.other]) };
  }

  function addLegend(map, collection, basemapShown) {
    const legend = L.control({ position: "bottomright" });
    legend.onAdd = function () {
      const box = element("div", "map-legend");
      const { title, entries } = legendEntries(collection);
      box.appendChild(element("strong", "", title));
      entries.forEach(([colour, text]) => {
        const row = element("div", "map-legend-row");
        const swatch = element("span", "map-swatch");
        swatch.style.background = colour;  // CSSOM, which the CSP allows (no style attribute in markup)
        row.append(swatch, element("span", "", text));
        box.appendChild(row);
      });
      if (basemapShown) {
        const row = element("div", "map-legend-row");
        row.append(element("span", "map-swatch map-swatch-basemap"), element("span", "", labels.basemap));
        box.appendChild(row);
      }
      return box;
    };
    legend.addTo(map);
  }

  async function json(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/geo+json" } });
    if (!response.ok) throw new Error(url + ": " + response.status);
    return response.json();
  }

  async function drawBasemap(map) {
    if (config.basemap) {
      L.tileLayer(config.basemap.url, {
        attribution: config.basemap.attribution, subdomains: config.basemap.subdomains.length ? config.basemap.subdomains : "abc",
        maxZoom: config.basemap.maxZoom,
      }).addTo(map);
      return false;
    }
    if (!config.basemapSrc) return false;
    try {
      basemapData = basemapData || json(config.basemapSrc);
      const data = await basemapData;
      if (!data.features.length) return false;
      const pane = map.createPane("basemap");
      pane.style.zIndex = 250;  // under the data (overlayPane: 400)
      L.geoJSON(data, {
        pane, interactive: false,
        style: (f) => ({ color: "#b9c0c7", weight: kindOf(f) === "road" ? 1.5 : 0.6, fillColor: "#eef1f3", fillOpacity: 0.5 }),
        pointToLayer: (f, latlng) => L.circleMarker(latlng, { radius: 1, pane }),
      }).addTo(map);
      return true;
    } catch (err) {
      return false;
    }
  }

  async function draw(el) {
    if (el.dataset.mapState) return;
    el.dataset.mapState = "loading";
    const map = L.map(el, { zoomControl: true, attributionControl: Boolean(config.basemap) });
    L.control.scale({ metric: true, imperial: false }).addTo(map);
    let collection;
    try {
      collection = el.dataset.mapData
        ? JSON.parse(document.getElementById(el.dataset.mapData).textContent)
        : await json(el.dataset.mapSrc);
    } catch (err) {
      el.dataset.mapState = "failed";
      el.appendChild(element("p", "map-message", labels.failed));
      return;
    }
    const basemapShown = await drawBasemap(map);
    const layer = L.geoJSON(collection, {
      style: style(collection),
      pointToLayer: (f, latlng) => L.circleMarker(latlng, { radius: 4 }),
      onEachFeature: (f, l) => l.bindPopup(() => popupContent(f.properties)),
    }).addTo(map);
    el.dataset.mapFeatures = String(collection.features.length);
    if (!collection.features.length) {
      map.setView([31.23, 121.47], 11);
      el.appendChild(element("p", "map-message", labels.empty));
    } else {
      map.fitBounds(layer.getBounds(), { padding: [12, 12] });
      addLegend(map, collection, basemapShown);
    }
    el.dataset.mapState = "ready";
  }

  window.MiliaoMap = { draw };
  document.querySelectorAll("[data-map]").forEach(draw);
})();
