// totalseg view: one case (CT + labels) in NiiVue, with a structure list and CT windows.
// The page lives at <token>/case/<id>/; every request is relative, so it keeps the token.
'use strict';

(function () {
  const PRESETS = { soft: [40, 400], bone: [400, 1800], lung: [-600, 1500] };
  const STATUS = {
    ok: ['', ''],
    absent: ['absent', 'no voxel of this structure'],
    incomplete: ['cut', 'touches the image border: probably cut by the field of view'],
    below_min_volume: ['implausible', 'below its plausible lower volume bound: a failed segmentation?'],
  };
  const LAYOUTS = {
    multi: niivue.SLICE_TYPE.MULTIPLANAR, axial: niivue.SLICE_TYPE.AXIAL,
    coronal: niivue.SLICE_TYPE.CORONAL, sagittal: niivue.SLICE_TYPE.SAGITTAL,
    render: niivue.SLICE_TYPE.RENDER,
  };
  const parts = location.pathname.split('/');
  const caseId = decodeURIComponent(parts[parts.length - 2]);
  const base = '../../api/case/' + encodeURIComponent(caseId);
  const $ = (id) => document.getElementById(id);
  const state = { info: null, nv: null, visible: new Map(), names: new Map(), opacity: 0.6 };
  window.totalsegViewer = state; // for tests and the browser console

  function say(text) { $('message').textContent = text; }

  async function getJSON(url) {
    const response = await fetch(url);
    const doc = await response.json();
    if (!response.ok) throw new Error(doc.error || response.statusText);
    return doc;
  }

  function fmt(value, digits) {
    return value === null || value === undefined ? '' : value.toFixed(digits);
  }

  // ---- NiiVue -----------------------------------------------------------------------------
  function makeViewer() {
    const nv = new niivue.Niivue({
      backColor: [0, 0, 0, 1],
      show3Dcrosshair: true,
      crosshairColor: [1, 0.3, 0.3, 0.85],
      crosshairGap: 6,
      isColorbar: false,
      multiplanarShowRender: niivue.SHOW_RENDER.ALWAYS,
      multiplanarLayout: niivue.MULTIPLANAR_TYPE.GRID,
      dragMode: niivue.DRAG_MODE.windowing, // right-drag: level and width
      dragAndDropEnabled: false,
      logLevel: 'error',
      loadingText: 'loading...',
    });
    nv.onLocationChange = (loc) => { $('location').textContent = loc.string || ''; };
    nv.onIntensityChange = showWindow;
    return nv;
  }

  function showWindow() { // after NiiVue changed the window (right-drag)
    const ct = state.nv && state.nv.volumes[0];
    if (!ct) return;
    $('level').value = Math.round((ct.cal_min + ct.cal_max) / 2);
    $('width').value = Math.round(ct.cal_max - ct.cal_min);
  }

  // Index = label value, from 0 (transparent): NiiVue's label shader indexes the table so.
  function labelColormap() {
    const structures = state.info.structures;
    const top = Math.max(1, ...structures.map((s) => s.label));
    const cm = { R: [], G: [], B: [], A: [], I: [], labels: [] };
    for (let v = 0; v <= top; v++) {
      cm.R.push(0); cm.G.push(0); cm.B.push(0); cm.A.push(0); cm.I.push(v); cm.labels.push('');
    }
    for (const s of structures) {
      cm.R[s.label] = s.colour[0]; cm.G[s.label] = s.colour[1]; cm.B[s.label] = s.colour[2];
      cm.A[s.label] = state.visible.get(s.label) ? 255 : 0;
      cm.labels[s.label] = s.name;
    }
    return cm;
  }

  // Each change below ends in one updateGLVolume (a redraw): costly in software WebGL.
  function applyLabels(redraw = true) {
    const nv = state.nv;
    if (!state.info.has_labels || nv.volumes.length < 2) return;
    nv.volumes[1].setColormapLabel(labelColormap());
    nv.volumes[1].opacity = state.opacity;
    if (redraw) nv.updateGLVolume();
  }

  function applyWindow(level, width, redraw = true) {
    const nv = state.nv;
    if (!nv.volumes.length) return;
    width = Math.max(1, width);
    nv.volumes[0].cal_min = level - width / 2;
    nv.volumes[0].cal_max = level + width / 2;
    $('level').value = Math.round(level);
    $('width').value = Math.round(width);
    if (redraw) nv.updateGLVolume();
  }

  async function loadVolumes(preview) {
    const nv = state.nv;
    const suffix = preview ? '-preview.nii.gz' : '.nii.gz';
    const level = Number($('level').value || 40);
    const width = Number($('width').value || 400);
    const list = [{
      url: base + '/ct' + suffix, name: caseId + '_ct' + suffix, colormap: 'gray',
      cal_min: level - width / 2, cal_max: level + width / 2,
    }];
    if (state.info.has_labels) {
      list.push({ url: base + '/labels' + suffix, name: caseId + '_labels' + suffix, opacity: 0 });
    }
    const crosshair = nv.volumes.length ? Array.from(nv.scene.crosshairPos) : null;
    await nv.loadVolumes(list);
    if (crosshair) nv.scene.crosshairPos = crosshair;
    applyLabels(false);
    applyWindow(level, width, false);
    nv.updateGLVolume();
  }

  // ---- structure list ----------------------------------------------------------------------
  function jumpTo(structure) {
    if (!structure.centroid_mm || !state.nv.volumes.length) return;
    state.nv.scene.crosshairPos = state.nv.mm2frac(structure.centroid_mm);
    state.nv.createOnLocationChange();
    state.nv.updateGLVolume();
  }

  function structureRow(s) {
    const tr = document.createElement('tr');
    const absent = s.status === 'absent';
    tr.dataset.name = s.name;
    if (absent) tr.className = 'absent';
    if (s.flag) tr.classList.add('flag-' + s.flag);
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = state.visible.get(s.label);
    box.disabled = absent || !state.info.has_labels;
    box.title = 'show / hide';
    box.addEventListener('change', () => { state.visible.set(s.label, box.checked); applyLabels(); });
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = `rgb(${s.colour.join(',')})`;
    const cells = [[box, swatch], [], [fmt(s.volume_ml, 1)], [fmt(s.mean_hu, 0)], []];
    const name = document.createElement('button');
    name.type = 'button';
    name.className = 'link';
    name.textContent = s.name;
    name.title = absent ? 'absent' : 'jump to its centroid';
    name.disabled = !s.centroid_mm;
    name.addEventListener('click', () => jumpTo(s));
    cells[1].push(name);
    const [status, why] = STATUS[s.flag || s.status] || [s.status, ''];
    cells[4].push(status);
    tr.title = why;
    for (const content of cells) {
      const td = document.createElement('td');
      for (const c of content) td.append(c);
      tr.append(td);
    }
    return tr;
  }

  function fillStructures() {
    const tbody = document.querySelector('#structures tbody');
    tbody.replaceChildren(...state.info.structures.map(structureRow));
    const present = state.info.structures.filter((s) => s.status !== 'absent').length;
    document.querySelector('#label-controls legend').textContent =
      `Structures (${present} present of ${state.info.structures.length})`;
  }

  function setAll(visible) {
    for (const s of state.info.structures) {
      if (s.status !== 'absent') state.visible.set(s.label, visible);
    }
    for (const box of document.querySelectorAll('#structures tbody input')) {
      if (!box.disabled) box.checked = visible;
    }
    applyLabels();
  }

  function hoverLabel(event) {
    const nv = state.nv;
    const tip = $('hover');
    if (!state.info || nv.volumes.length < 1) return;
    const canvas = $('gl');
    const rect = canvas.getBoundingClientRect();
    const dpr = nv.uiData.dpr || window.devicePixelRatio || 1;
    const frac = nv.canvasPos2frac([(event.clientX - rect.left) * dpr, (event.clientY - rect.top) * dpr]);
    if (!frac || frac[0] < 0) { tip.hidden = true; return; }
    const mm = nv.frac2mm(frac);
    const ct = nv.volumes[0];
    const v0 = ct.mm2vox(mm);
    let text = Math.round(ct.getValue(v0[0], v0[1], v0[2])) + ' HU';
    if (nv.volumes.length > 1) {
      const labels = nv.volumes[1];
      const v = labels.mm2vox(mm);
      const name = state.names.get(Math.round(labels.getValue(v[0], v[1], v[2])));
      if (name) text = name + ' \u00b7 ' + text;
    }
    tip.textContent = text;
    tip.style.left = (event.clientX - rect.left + 14) + 'px';
    tip.style.top = (event.clientY - rect.top + 14) + 'px';
    tip.hidden = false;
  }

  // ---- study navigation --------------------------------------------------------------------
  function studyOrder(listing) {
    const ids = listing.cases.map((c) => c.case_id);
    try {
      const saved = JSON.parse(sessionStorage.getItem('totalseg-order') || 'null');
      if (Array.isArray(saved) && saved.includes(caseId)) return saved;
    } catch (e) { /* no stored order */ }
    return ids;
  }

  function nextAfter(order, predicate) {
    const at = order.indexOf(caseId);
    for (let step = 1; step < order.length; step++) {
      const id = order[(at + step) % order.length];
      if (predicate(id)) return id;
    }
    return null;
  }

  function setupStudy(listing) {
    if (listing.mode !== 'study') { $('title').textContent = listing.title; return; }
    const byId = new Map(listing.cases.map((c) => [c.case_id, c]));
    const row = byId.get(caseId) || {};
    sessionStorage.setItem('totalseg-last', caseId);
    $('back').hidden = false;
    $('title').textContent = caseId;
    const bits = [row.sex, row.age === null || row.age === undefined ? null : row.age + ' y',
      row.status !== 'ok' ? 'FAILED: ' + (row.reason || '') : null,
      row.implausible && row.implausible.length ? 'implausible: ' + row.implausible.join(', ') : null,
      row.has_labels ? null : 'no segmentation kept (CT and stored measures only)'];
    $('meta').textContent = bits.filter(Boolean).join(' \u00b7 ');
    const order = studyOrder(listing);
    const go = (id) => { location.href = '../' + encodeURIComponent(id) + '/'; };
    const flagged = nextAfter(order, (id) => byId.get(id) && byId.get(id).flagged);
    const next = nextAfter(order, () => true);
    for (const [button, target] of [[$('next-flagged'), flagged], [$('next-case'), next]]) {
      button.hidden = false;
      button.disabled = target === null;
      if (target !== null) button.addEventListener('click', () => go(target));
    }
  }

  // ---- start -------------------------------------------------------------------------------
  async function start() {
    const [listing, info] = await Promise.all([getJSON('../../api/cases'), getJSON(base)]);
    state.info = info;
    setupStudy(listing);
    document.title = 'totalseg view: ' + caseId;
    for (const s of info.structures) {
      state.visible.set(s.label, s.status !== 'absent');
      state.names.set(s.label, s.name);
    }
    fillStructures();
    $('label-controls').hidden = !info.has_labels;
    state.nv = makeViewer();
    await state.nv.attachToCanvas($('gl'));
    $('level').value = PRESETS.soft[0];
    $('width').value = PRESETS.soft[1];
    const layout = new URLSearchParams(location.hash.replace(/^#/, '')).get('layout');
    if (layout in LAYOUTS) state.nv.setSliceType(LAYOUTS[layout]);
    if (info.preview_step > 1) {
      say(`showing a 1:${info.preview_step} preview; loading full resolution...`);
      await loadVolumes(true);
      document.body.dataset.state = 'preview';
    }
    await loadVolumes(false);
    say(`${info.shape.join(' \u00d7 ')} voxels, ${info.spacing_mm.join(' \u00d7 ')} mm`);
    document.body.dataset.state = 'ready';
    state.readyAt = performance.now();
  }

  function wire() {
    for (const b of document.querySelectorAll('#presets button')) {
      b.addEventListener('click', () => applyWindow(...PRESETS[b.dataset.preset]));
    }
    const typed = () => applyWindow(Number($('level').value), Number($('width').value));
    $('level').addEventListener('change', typed);
    $('width').addEventListener('change', typed);
    for (const b of document.querySelectorAll('#layouts button')) {
      b.addEventListener('click', () => state.nv.setSliceType(LAYOUTS[b.dataset.layout]));
    }
    $('opacity').addEventListener('input', () => {
      state.opacity = Number($('opacity').value);
      applyLabels();
    });
    $('show-all').addEventListener('click', () => setAll(true));
    $('hide-all').addEventListener('click', () => setAll(false));
    $('find').addEventListener('input', () => {
      const q = $('find').value.trim().toLowerCase();
      for (const tr of document.querySelectorAll('#structures tbody tr')) {
        tr.hidden = q !== '' && !tr.dataset.name.toLowerCase().includes(q);
      }
    });
    $('gl').addEventListener('mousemove', (e) => { if (e.buttons & 2) showWindow(); hoverLabel(e); });
    $('gl').addEventListener('mouseup', showWindow);
    $('gl').addEventListener('contextmenu', (e) => e.preventDefault());
    $('gl').addEventListener('mouseleave', () => { $('hover').hidden = true; });
  }

  wire();
  start().catch((err) => {
    say('Could not open this case: ' + err.message);
    document.body.dataset.state = 'error';
  });
})();
