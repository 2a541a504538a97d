(function () {
  'use strict';
  var PAGE = __PAGE__;
  var JOBS = JSON.parse(document.getElementById('jobs').textContent);
  var LABELS = {ok: 'ok', failed: 'failed', skipped: 'done before'};
  var KEYS = ['status', 'style', 'sort', 'q', 'page', 'open', 'v'];
  var DEFAULTS = {status: '', style: '', sort: 'input', q: '', page: '1', open: '', v: ''};
  var $ = function (id) { return document.getElementById(id); };
  var grid = $('grid'), viewer = $('viewer');
  var controls = {status: $('f-status'), style: $('f-style'), sort: $('f-sort'), q: $('f-q')};
  var collator = new Intl.Collator(undefined, {numeric: true, sensitivity: 'base'});
  var state = readState(), cache = {};
  var SETS = roomSets();

  // Each room set's anchor key and photos: the set's jobs sort together where its anchor's key would.
  function roomSets() {
    var sets = {};
    JOBS.forEach(function (j) {
      if (!j.g) return;
      var s = sets[j.g] || (sets[j.g] = {anchor: null, named: null, first: j.k, photos: {}});
      s.photos[j.k] = true;
      if (j.an && s.anchor === null) s.anchor = j.k;
      if (j.rf && j.rf.a && s.named === null) s.named = j.rf.src;
      if (collator.compare(j.k, s.first) < 0) s.first = j.k;
    });
    Object.keys(sets).forEach(function (name) {
      var s = sets[name];
      s.anchor = s.anchor !== null ? s.anchor : s.named || s.first;  // a journal that lost the anchor's lines
      s.count = Object.keys(s.photos).length;
    });
    return sets;
  }
  function byInput(a, b) {
    var ja = JOBS[a], jb = JOBS[b];
    if (!ja.g && !jb.g) return collator.compare(ja.k, jb.k) || a - b;
    var ga = ja.g ? SETS[ja.g].anchor : ja.k, gb = jb.g ? SETS[jb.g].anchor : jb.k;
    return collator.compare(ga, gb) || ((ja.g || '') < (jb.g || '') ? -1 : (ja.g || '') > (jb.g || '') ? 1 : 0) ||
      (ja.g ? (ja.k !== ga) - (jb.k !== gb) : 0) || collator.compare(ja.k, jb.k) || a - b;
  }

  // The state is the URL fragment: a view can be bookmarked, sent, or loaded by a test.
  function readState() {
    var params = new URLSearchParams(location.hash.slice(1)), s = {};
    KEYS.forEach(function (k) { s[k] = params.get(k) || DEFAULTS[k]; });
    return s;
  }
  function hashFor(changes) {
    var s = Object.assign({}, state, changes), params = new URLSearchParams();
    KEYS.forEach(function (k) { if (s[k] && s[k] !== DEFAULTS[k]) params.set(k, s[k]); });
    return '#' + params.toString();
  }
  function go(changes, replace) {
    var hash = hashFor(changes);
    if (replace) { history.replaceState(null, '', hash); render(); } else { location.hash = hash; }
  }

  function quality(j) { return typeof j.q === 'number' ? j.q : null; }
  // Every job's index in one order, computed once per order: the filters then keep a subsequence.
  function ordered(sort) {
    if (cache[sort]) return cache[sort];
    var idx = JOBS.map(function (_, i) { return i; }), dir = sort === '-quality' ? -1 : 1;
    if (sort === 'quality' || sort === '-quality') {
      idx.sort(function (a, b) {  // unscored (failed) jobs last either way: there is nothing to look at
        var qa = quality(JOBS[a]), qb = quality(JOBS[b]);
        if (qa === null || qb === null) return (qa === null) - (qb === null) || a - b;
        return dir * (qa - qb) || a - b;
      });
    } else {
      idx.sort(byInput);
    }
    return (cache[sort] = idx);
  }
  function visible(s) {
    var q = s.q.trim().toLowerCase();
    return ordered(s.sort).filter(function (i) {
      var j = JOBS[i];
      return (!s.status || j.t === s.status) && (!s.style || j.s === s.style) &&
        (!q || (j.g ? j.k + ' ' + j.g : j.k).toLowerCase().indexOf(q) !== -1);
    });
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function fmtQ(q) { return typeof q === 'number' ? q.toFixed(2) : 'n/a'; }
  function grade(passed) { return passed === true ? 'pass' : passed === false ? 'low' : 'none'; }
  // "v2" only where a job has several results: one result is simply the result.
  function name(j, v) { return (j.v || []).length > 1 ? 'v' + v[0] : 'result'; }
  function thumb(i, j, v, current) {
    var fig = el('figure'), link = el('a', current ? 'current' : ''), img = el('img'), cap = el('figcaption');
    link.href = hashFor({open: String(i), v: String(v[0])});
    img.loading = 'lazy';  // before src, so only the thumbnails scrolled into view are fetched
    img.decoding = 'async';
    img.alt = j.k + ' · ' + (j.s || '') + ' · ' + name(j, v);
    img.src = v[5] || v[4];
    link.appendChild(img);
    cap.append(el('b', null, name(j, v)), el('span', 'seed', 'seed ' + v[1]), el('span', 'q ' + grade(v[3]), fmtQ(v[2])));
    fig.append(link, cap);
    return fig;
  }
  // The input as the models saw it, first in the card: before, then after. An output that did not keep it (and
  // whose photo is gone) says so in its place: never an empty or broken picture.
  function photo(i, j) {
    var fig = el('figure', j.in ? 'photo' : 'photo gone'), link = el('a'), img = el('img'), cap = el('figcaption');
    link.href = hashFor({open: String(i), v: ''});
    if (j.in) {
      img.loading = 'lazy';
      img.decoding = 'async';
      img.alt = j.k + ' · photo';
      img.src = j.in;
      link.appendChild(img);
    } else {
      link.appendChild(el('span', null, 'before not kept'));
    }
    cap.appendChild(el('b', null, 'photo'));
    if (j.og) {  // the unaltered original, published beside the results (--publish-originals)
      var original = el('a', 'original', 'original');
      original.href = j.og;
      original.title = 'the unaltered original, as published';
      cap.appendChild(original);
    }
    fig.append(link, cap);
    return fig;
  }
  // What styled the job, small above its pictures: a reference image, or the anchor's result for a set's photo.
  function reference(j) {
    var r = j.rf, fig = el('figure', 'ref'), link = el('a'), img = el('img'), cap = el('figcaption');
    link.href = r.h;
    link.target = '_blank';
    link.title = r.a ? 'the anchor\'s result: ' + r.src : 'style reference: ' + (r.src || '');
    img.loading = 'lazy';
    img.decoding = 'async';
    img.alt = j.k + ' · ' + (r.a ? 'anchor result' : 'style reference');
    img.src = r.h;
    link.appendChild(img);
    cap.appendChild(el('b', null, r.a ? 'from anchor' : 'style reference'));
    if (r.a) cap.appendChild(el('span', 'from', r.src));
    if (!r.a && typeof r.sc === 'number') cap.appendChild(el('span', 'scale', 'scale ' + r.sc));
    if (!r.a && r.src) cap.appendChild(el('span', 'src', r.src));
    fig.append(link, cap);
    return fig;
  }
  function card(i) {
    var j = JOBS[i], node = el('article', 'card ' + j.t), head = el('header'), title = el('h2', null, j.k);
    node.dataset.job = i;
    title.title = j.k;
    var style = (j.s || 'no style') + (j.m === 'stage' ? ' \u00b7 staged' : '');
    head.append(title, el('span', 'tag', style), el('span', 'status ' + j.t, LABELS[j.t]));
    if (j.an) head.appendChild(el('span', 'tag anchor', 'anchor'));
    if (j.g && state.sort !== 'input') head.appendChild(el('span', 'tag set', 'room set ' + j.g));
    if (j.t !== 'failed') head.appendChild(el('span', 'q ' + grade(j.p), fmtQ(j.q)));
    node.appendChild(head);
    if (j.rf && j.rf.h) node.appendChild(reference(j));
    if (j.t === 'failed') { node.appendChild(el('p', 'error', j.e || 'failed')); return node; }
    var strip = el('div', 'strip');
    strip.appendChild(photo(i, j));
    (j.v || []).forEach(function (v) { strip.appendChild(thumb(i, j, v, false)); });
    node.appendChild(strip);
    return node;
  }

  function pager(node, page, pages, start, shown, total) {
    var prev = el('a', page > 1 ? '' : 'off', '‹ previous'), next = el('a', page < pages ? '' : 'off', 'next ›');
    prev.href = hashFor({page: String(page - 1)});
    next.href = hashFor({page: String(page + 1)});
    var text = total ? (start + 1) + '–' + (start + shown) + ' of ' + total.toLocaleString('en') + ' jobs' : 'no jobs';
    node.replaceChildren(el('span', null, text), prev, el('span', null, 'page ' + page + ' of ' + pages), next);
  }
  function render() {
    state = readState();
    Object.keys(controls).forEach(function (k) { if (controls[k].value !== state[k]) controls[k].value = state[k]; });
    var idx = visible(state), pages = Math.max(1, Math.ceil(idx.length / PAGE));
    var page = Math.min(Math.max(1, parseInt(state.page, 10) || 1), pages), start = (page - 1) * PAGE;
    var slice = idx.slice(start, start + PAGE);
    grid.replaceChildren(cards(slice));
    $('empty').hidden = idx.length > 0;
    document.querySelectorAll('.pager').forEach(function (node) {
      pager(node, page, pages, start, slice.length, idx.length);
    });
    show(state.open === '' ? null : Number(state.open), idx);
  }

  // By input, a room set's cards sit in one group under its heading; sorted by quality they scatter, each tagged.
  function cards(slice) {
    var frag = document.createDocumentFragment(), group = null, name = null;
    slice.forEach(function (i) {
      var j = JOBS[i];
      if (state.sort !== 'input' || !j.g) { group = name = null; frag.appendChild(card(i)); return; }
      if (j.g !== name) {
        var s = SETS[j.g], section = el('section', 'set'), head = el('header');
        head.append(el('h3', null, 'Room set ' + j.g),
                    el('span', null, s.count + (s.count === 1 ? ' photo' : ' photos') + ' · anchor ' + s.anchor));
        group = el('div', 'set-cards');
        section.dataset.set = name = j.g;
        section.append(head, group);
        frag.appendChild(section);
      }
      group.appendChild(card(i));
    });
    return frag;
  }

  function row(table, name, value, cls) {
    var tr = el('tr'), td = el('td', cls || '', value);
    tr.append(el('th', null, name), td);
    table.appendChild(tr);
    return td;
  }
  function facts(j, v) {
    var table = $('v-facts'), parts = Object.keys(j.qp || {}).map(function (k) { return k + ' ' + fmtQ(j.qp[k]); });
    table.replaceChildren();
    row(table, 'status', LABELS[j.t]);
    row(table, 'style', j.s || '');
    if (j.r) row(table, 'room', j.r);
    if (j.g) row(table, 'room set', j.g + (j.an ? ' (anchor)' : ''));
    if (j.rf) row(table, 'style reference', j.rf.a ? 'from anchor ' + j.rf.src : (j.rf.src || '') +
                  (typeof j.rf.sc === 'number' ? ' · scale ' + j.rf.sc : ''));
    if (j.t === 'failed') { row(table, 'error', j.e || 'failed', 'error'); return; }
    if (j.v.length > 1) row(table, 'variation', 'v' + v[0] + ' of ' + j.v.length);
    row(table, 'seed', v[1]);
    row(table, 'quality', fmtQ(v[2]) + (v === j.v[0] && parts.length ? ' (' + parts.join(', ') + ')' : ''),
        'q ' + grade(v[3]));
    if (j.fd && v === j.v[0]) row(table, 'fidelity', j.fd);
    if (j.a) row(table, 'attempts', j.a);
    var open = el('a', null, 'full size');
    open.href = v[4];
    open.target = '_blank';
    row(table, 'result', '').appendChild(open);
  }
  function extras(j) {
    var times = $('v-times'), maps = $('v-maps');
    times.replaceChildren();
    Object.keys(j.tm || {}).forEach(function (k) { row(times, k, j.tm[k].toFixed(3) + ' s'); });
    maps.replaceChildren();
    if (!Object.keys(j.mp || {}).length) maps.appendChild(el('p', 'none', 'control maps not kept'));
    Object.keys(j.mp || {}).forEach(function (k) {
      var fig = el('figure'), img = el('img');
      img.loading = 'lazy';
      img.alt = k;
      img.src = j.mp[k];
      fig.append(img, el('figcaption', null, k));
      maps.appendChild(fig);
    });
  }
  function compare(j, v) {
    var after = $('v-after'), before = $('v-before'), slider = $('v-slider');
    $('v-stage').hidden = j.t === 'failed';
    if (j.t === 'failed') return;
    after.src = v[4];
    var both = Boolean(j.in);
    [before.parentNode, slider, $('v-hint-l'), $('v-hint-r')].forEach(function (n) { n.hidden = !both; });
    $('v-gone').hidden = both;

    if (both) { before.src = j.in; slider.value = 50; before.parentNode.style.clipPath = 'inset(0 50% 0 0)'; }
  }
  function show(i, idx) {
    var j = i === null ? null : JOBS[i];
    viewer.hidden = !j;
    document.body.classList.toggle('locked', Boolean(j));
    if (!j) return;
    var v = (j.v || []).filter(function (x) { return String(x[0]) === state.v; })[0] || (j.v || [])[0];
    var at = idx.indexOf(i), prev = $('v-prev'), next = $('v-next');
    $('v-title').textContent = j.k + ' · ' + (j.s || '');
    prev.className = at > 0 ? '' : 'off';
    next.className = at >= 0 && at < idx.length - 1 ? '' : 'off';
    prev.href = at > 0 ? hashFor({open: String(idx[at - 1]), v: ''}) : '#';
    next.href = at >= 0 && at < idx.length - 1 ? hashFor({open: String(idx[at + 1]), v: ''}) : '#';
    $('v-close').href = hashFor({open: '', v: ''});
    compare(j, v);
    var strip = $('v-strip');
    strip.replaceChildren();
    if (j.t !== 'failed') (j.v || []).forEach(function (x) { strip.appendChild(thumb(i, j, x, x === v)); });
    facts(j, v);
    extras(j);
  }

  $('v-slider').addEventListener('input', function () {
    $('v-before').parentNode.style.clipPath = 'inset(0 ' + (100 - this.value) + '% 0 0)';
  });
  ['status', 'style', 'sort'].forEach(function (k) {
    controls[k].addEventListener('change', function () { var c = {page: '1'}; c[k] = this.value; go(c); });
  });
  var typing;
  controls.q.addEventListener('input', function () {
    var value = this.value;
    clearTimeout(typing);
    typing = setTimeout(function () { go({q: value, page: '1'}, true); }, 150);
  });
  viewer.addEventListener('click', function (e) { if (e.target === viewer) go({open: '', v: ''}); });
  document.addEventListener('keydown', function (e) {
    if (viewer.hidden) return;
    if (e.key === 'Escape') go({open: '', v: ''});
    var link = e.key === 'ArrowLeft' ? $('v-prev') : e.key === 'ArrowRight' ? $('v-next') : null;
    if (link && link.className !== 'off') location.hash = link.getAttribute('href');
  });
  window.addEventListener('hashchange', render);
  render();
})();
