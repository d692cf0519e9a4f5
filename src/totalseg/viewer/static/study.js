// totalseg view: the case table of a study (sortable, filterable), linking to the case viewer.
// Hash parameters: #flag=<structure> shows the cases flagged for that structure (the study
// report links here), #q=<text> fills the filter.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const state = { cases: [], key: 'case_id', ascending: true, shown: [] };
  window.totalsegStudy = state; // for tests and the browser console

  function cell(value) {
    if (value === null || value === undefined) return '';
    if (Array.isArray(value)) return value.join(', ');
    if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(1);
    return String(value);
  }

  function compare(a, b) {
    const x = a[state.key];
    const y = b[state.key];
    const missing = (v) => v === null || v === undefined || (Array.isArray(v) && v.length === 0);
    if (missing(x) || missing(y)) return missing(x) - missing(y); // missing values last
    const d = Array.isArray(x) ? x.length - y.length
      : typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
    return state.ascending ? d : -d;
  }

  function matches(c, query, flag) {
    if ($('flagged-only').checked && !c.flagged) return false;
    if (flag && !c.implausible.includes(flag) && !c.incomplete.includes(flag)) return false;
    if (!query) return true;
    const text = [c.case_id, c.subject_id, c.sex, c.status, c.reason, ...c.implausible,
      ...c.incomplete].map(cell).join(' ').toLowerCase();
    return query.split(/\s+/).every((word) => text.includes(word));
  }

  function hashParams() {
    return new URLSearchParams(location.hash.replace(/^#/, ''));
  }

  function render() {
    const query = $('filter').value.trim().toLowerCase();
    const flag = hashParams().get('flag');
    state.shown = state.cases.filter((c) => matches(c, query, flag)).sort(compare);
    sessionStorage.setItem('totalseg-order', JSON.stringify(state.shown.map((c) => c.case_id)));
    const rows = state.shown.map((c) => {
      const tr = document.createElement('tr');
      tr.dataset.caseId = c.case_id;
      if (c.flagged) tr.className = 'flagged';
      if (c.status !== 'ok') tr.classList.add('failed');
      const link = document.createElement('a');
      link.href = 'case/' + encodeURIComponent(c.case_id) + '/';
      link.textContent = c.case_id;
      const status = c.status === 'ok' ? 'ok' : c.status + (c.reason ? ': ' + c.reason : '');
      const cut = document.createElement('span');
      cut.textContent = c.incomplete.length ? String(c.incomplete.length) : '';
      cut.title = c.incomplete.join(', ');
      const values = [link, c.subject_id, c.age, c.sex, status, c.n_present, c.implausible, cut];
      for (const v of values) {
        const td = document.createElement('td');
        if (v instanceof Node) td.append(v); else td.textContent = td.title = cell(v);
        tr.append(td);
      }
      tr.addEventListener('click', (e) => { if (e.target.tagName !== 'A') location.href = link.href; });
      return tr;
    });
    document.querySelector('#cases tbody').replaceChildren(...rows);
    for (const th of document.querySelectorAll('#cases th')) {
      th.classList.toggle('sorted', th.dataset.key === state.key);
      th.classList.toggle('descending', th.dataset.key === state.key && !state.ascending);
    }
    $('shown').textContent = `${state.shown.length} shown` + (flag ? ` (flagged for ${flag})` : '');
  }

  function openNextFlagged() {
    const order = state.shown.map((c) => c.case_id);
    const last = sessionStorage.getItem('totalseg-last');
    const at = order.indexOf(last);
    for (let step = 1; step <= order.length; step++) {
      const c = state.shown[(at + step + order.length) % order.length];
      if (c && c.flagged) { location.href = 'case/' + encodeURIComponent(c.case_id) + '/'; return; }
    }
    $('message').textContent = 'No flagged case among the cases shown.';
  }

  async function start() {
    const response = await fetch('api/cases');
    const listing = await response.json();
    if (!response.ok) throw new Error(listing.error || response.statusText);
    state.cases = listing.cases;
    $('title').textContent = listing.title;
    document.title = 'totalseg view: ' + listing.title;
    const nFlagged = listing.cases.filter((c) => c.flagged).length;
    const nFailed = listing.cases.filter((c) => c.status !== 'ok').length;
    $('counts').textContent = `${nFlagged} flagged, ${nFailed} failed`;
    $('report').hidden = !listing.report;
    const q = hashParams().get('q');
    if (q) $('filter').value = q;
    render();
    document.body.dataset.state = 'ready';
  }

  for (const th of document.querySelectorAll('#cases th')) {
    th.addEventListener('click', () => {
      state.ascending = state.key === th.dataset.key ? !state.ascending : true;
      state.key = th.dataset.key;
      render();
    });
  }
  $('filter').addEventListener('input', render);
  $('flagged-only').addEventListener('change', render);
  $('next-flagged').addEventListener('click', openNextFlagged);
  window.addEventListener('hashchange', render);
  start().catch((err) => {
    $('message').textContent = 'Could not load the case table: ' + err.message;
    document.body.dataset.state = 'error';
  });
})();
