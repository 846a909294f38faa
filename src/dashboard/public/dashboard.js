// The dashboard page: plain JavaScript, no build step. State arrives on one server-sent event
// stream (/events); the chart and the dead-letter queue are read from the REST API on demand.
(function () {
  'use strict';

  const root = document.documentElement;
  const READ_KEY_REQUIRED = root.dataset.readKey === 'required';
  const WRITE_KEY_REQUIRED = root.dataset.writeKey === 'required';
  const SESSION_RENEW_BEFORE_MS = 10 * 60_000;
  const CHART_REFRESH_MS = 15_000;
  const CATEGORIES = {
    Good: 'good',
    Moderate: 'moderate',
    'Unhealthy for Sensitive Groups': 'usg',
    Unhealthy: 'unhealthy',
    'Very Unhealthy': 'very-unhealthy',
    Hazardous: 'hazardous',
  };
  const COLORS = { avg: '#0b63c5', max: '#c2410c', aqi: '#6b21a8' };

  const state = {
    key: null, // the API key: in memory only, never in a URL or in storage
    cities: new Map(),
    tiles: new Map(),
    staleAfterMs: 10 * 60_000,
    windows: [],
    chartCity: null,
    chartDirty: false,
    plot: null,
    renewTimer: null,
    dlqTotal: null,
    dlqShown: false,
    dlqCursor: null,
    dlqSelected: null,
    keyWaiters: [],
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null) continue;
      if (name === 'text') node.textContent = value;
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(name, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  // ---- times: the viewer's zone on screen, UTC on hover ----
  const timeFormat = new Intl.DateTimeFormat(undefined, {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
    dateStyle: 'medium',
    timeStyle: 'medium',
  });
  const utc = (iso) =>
    new Date(iso)
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d+Z$/, ' UTC');
  const isToday = (date) => date.toDateString() === new Date().toDateString();

  function timeElement(iso) {
    const date = new Date(iso);
    const text = isToday(date) ? timeFormat.format(date) : dateTimeFormat.format(date);
    return el('time', { datetime: iso, title: utc(iso), text });
  }

  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 48 * 3600) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  const number = (value, digits) => (typeof value === 'number' ? value.toFixed(digits) : '–');

  // ---- the API key ----

  /** Resolves with a key the user typed; the caller checks it against the server. */
  function askForKey(reason, error) {
    $('key-panel').hidden = false;
    $('key-reason').textContent = reason;
    $('key-error').textContent = error || '';
    $('key-input').focus();
    return new Promise((resolve, reject) => state.keyWaiters.push({ resolve, reject }));
  }

  function hideKeyPanel() {
    $('key-panel').hidden = true;
    $('key-error').textContent = '';
  }

  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('key-input').value.trim();
    $('key-input').value = '';
    if (!key) return;
    const waiters = state.keyWaiters.splice(0);
    for (const waiter of waiters) waiter.resolve(key);
  });

  $('key-cancel').addEventListener('click', () => {
    hideKeyPanel();
    const waiters = state.keyWaiters.splice(0);
    for (const waiter of waiters) waiter.reject(new Error('no key given'));
  });

  /** fetch with X-API-Key when a key is needed; asks for one (again) on a 401. */
  async function apiFetch(path, options, reason) {
    const needsKey = reason !== undefined;
    for (let error; ;) {
      if (needsKey && !state.key) {
        state.key = await askForKey(reason, error);
      }
      const headers = Object.assign({ accept: 'application/json' }, options && options.headers);
      if (state.key) headers['x-api-key'] = state.key;
      const response = await fetch(path, Object.assign({}, options, { headers }));
      if (response.status !== 401 || !needsKey) {
        if (needsKey) hideKeyPanel();
        return response;
      }
      state.key = null;
      error = 'That key was refused. Try again.';
    }
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return Array.isArray(body.message) ? body.message.join('; ') : String(body.message);
    } catch {
      return `HTTP ${response.status}`;
    }
  }

  // ---- the session that opens /events when reads need a key ----

  async function openSession(error) {
    for (;;) {
      if (!state.key) {
        state.key = await askForKey('This dashboard needs an API key to show its data.', error);
      }
      const response = await fetch('/dashboard/session', {
        method: 'POST',
        headers: { 'x-api-key': state.key, accept: 'application/json' },
      });
      if (response.ok) {
        hideKeyPanel();
        const { expires_at: expiresAt } = await response.json();
        const renewIn = Date.parse(expiresAt) - Date.now() - SESSION_RENEW_BEFORE_MS;
        // One renewal at a time, however many times the session was opened.
        clearTimeout(state.renewTimer);
        state.renewTimer = setTimeout(
          () => void openSession().catch(() => undefined),
          Math.max(60_000, renewIn),
        );
        return;
      }
      state.key = null;
      error =
        response.status === 401 ? 'That key was refused. Try again.' : await errorText(response);
    }
  }

  // ---- the event stream ----

  function setConnection(text, level) {
    const node = $('connection');
    node.textContent = text;
    node.dataset.state = level;
  }

  function connect() {
    const source = new EventSource('/events');
    source.addEventListener('open', () => setConnection('Live', 'live'));
    source.addEventListener('snapshot', (event) => applySnapshot(JSON.parse(event.data)));
    source.addEventListener('cities', (event) => {
      for (const city of JSON.parse(event.data).items) upsertCity(city);
      updateCityCount();
    });
    source.addEventListener('pipeline', (event) => renderPipeline(JSON.parse(event.data)));
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CONNECTING) {
        setConnection('Reconnecting…', 'down');
        return;
      }
      // Refused (e.g. the session expired): a new session, then a new stream.
      setConnection('Disconnected', 'down');
      source.close();
      const retry = READ_KEY_REQUIRED
        ? openSession('The session ended: give the key again.')
        : new Promise((resolve) => setTimeout(resolve, 3000));
      retry.then(connect, () => setConnection('Disconnected: no key', 'down'));
    });
  }

  function applySnapshot(snapshot) {
    state.staleAfterMs = snapshot.stale_after_ms;
    if (state.windows.join() !== snapshot.windows.join()) {
      state.windows = snapshot.windows;
      const select = $('window-select');
      select.replaceChildren(...snapshot.windows.map((w) => el('option', { value: w, text: w })));
      if (snapshot.windows.includes('5m')) select.value = '5m';
    }
    for (const city of snapshot.cities) upsertCity(city);
    updateCityCount();
    if (snapshot.pipeline) renderPipeline(snapshot.pipeline);
    if (!state.chartCity && snapshot.cities.length > 0) selectCity(snapshot.cities[0].city_id);
  }

  // ---- city tiles ----

  function upsertCity(city) {
    state.cities.set(city.city_id, city);
    let tile = state.tiles.get(city.city_id);
    if (!tile) {
      tile = createTile(city);
      state.tiles.set(city.city_id, tile);
      insertSorted($('tiles'), tile, city.city_id);
      insertCityOption(city);
    }
    renderTile(tile, city.latest);
    if (city.city_id === state.chartCity) state.chartDirty = true;
  }

  function insertSorted(container, node, id) {
    const after = [...container.children].find((c) => c.dataset.cityId > id);
    container.insertBefore(node, after || null);
  }

  function insertCityOption(city) {
    const select = $('city-select');
    const option = el('option', { value: city.city_id, text: city.city_name });
    const after = [...select.options].find((o) => o.value > city.city_id);
    select.insertBefore(option, after || null);
  }

  function createTile(city) {
    const tile = el('article', {
      class: 'tile',
      tabindex: '0',
      role: 'button',
      'aria-pressed': 'false',
      dataset: { cityId: city.city_id },
    });
    tile.append(
      el('h3', { text: city.city_name }),
      el(
        'p',
        { class: 'aqi-band' },
        el('span', { class: 'aqi-value' }),
        el('span', { class: 'aqi-category' }),
      ),
      el('dl', { class: 'values' }),
      el('p', { class: 'updated' }),
    );
    const choose = () => selectCity(city.city_id, true);
    tile.addEventListener('click', choose);
    tile.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        choose();
      }
    });
    return tile;
  }

  function renderTile(tile, m) {
    tile.dataset.category = CATEGORIES[m.aqi_category] || 'unknown';
    tile.querySelector('.aqi-value').textContent = String(m.aqi_value);
    tile.querySelector('.aqi-category').textContent = m.aqi_category;
    tile.setAttribute(
      'aria-label',
      `${m.city_name}: AQI ${m.aqi_value}, ${m.aqi_category}. Show its history.`,
    );
    tile
      .querySelector('.values')
      .replaceChildren(
        el('dt', { text: 'PM2.5' }),
        el('dd', { text: `${number(m.pm25_value, 1)} µg/m³` }),
        el('dt', { text: 'PM10' }),
        el('dd', { text: `${number(m.pm10_value, 0)} µg/m³` }),
        el('dt', { text: 'Temp.' }),
        el('dd', { text: `${number(m.temperature_c, 1)} °C` }),
      );
    renderUpdated(tile, m);
  }

  function renderUpdated(tile, m) {
    const age = Date.now() - Date.parse(m.timestamp);
    const stale = age > state.staleAfterMs;
    tile.dataset.stale = String(stale);
    const time = timeElement(m.timestamp);
    time.textContent = `updated ${ago(age)}`;
    time.title = `measured ${utc(m.timestamp)} (${dateTimeFormat.format(new Date(m.timestamp))} here)`;
    tile
      .querySelector('.updated')
      .replaceChildren(
        time,
        ...(stale ? [el('span', { class: 'stale-mark', text: 'stale' })] : []),
      );
  }

  function updateCityCount() {
    $('city-count').textContent = `(${state.cities.size})`;
    $('no-cities').hidden = state.cities.size > 0;
  }

  setInterval(() => {
    for (const [id, tile] of state.tiles) renderUpdated(tile, state.cities.get(id).latest);
  }, 1000);

  // ---- the chart ----

  function selectCity(cityId, focusChart) {
    state.chartCity = cityId;
    for (const [id, tile] of state.tiles) tile.setAttribute('aria-pressed', String(id === cityId));
    $('city-select').value = cityId;
    $('chart-city-name').textContent = state.cities.get(cityId).city_name;
    void loadChart();
    if (focusChart) $('history').scrollIntoView({ block: 'nearest' });
  }

  $('city-select').addEventListener('change', (event) => selectCity(event.target.value));
  $('window-select').addEventListener('change', () => void loadChart());
  $('range-select').addEventListener('change', () => void loadChart());

  setInterval(() => {
    if (state.chartDirty) void loadChart();
  }, CHART_REFRESH_MS);

  /** Every page of a paged API answer, following next_cursor until it is null. */
  async function fetchAllPages(path, reason, maxPages) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < maxPages; page++) {
      const separator = path.includes('?') ? '&' : '?';
      const url = cursor ? `${path}${separator}cursor=${encodeURIComponent(cursor)}` : path;
      const response = await apiFetch(url, {}, reason);
      if (!response.ok) throw new Error(await errorText(response));
      const body = await response.json();
      items.push(...body.items);
      cursor = body.next_cursor;
      if (!cursor) break;
    }
    return items;
  }

  async function loadChart() {
    const cityId = state.chartCity;
    const windowSize = $('window-select').value;
    if (!cityId || !windowSize) return;
    state.chartDirty = false;
    const hours = Number($('range-select').value);
    const from = new Date(Date.now() - hours * 3600_000).toISOString();
    const path =
      `/cities/${encodeURIComponent(cityId)}/aggregates?window=${encodeURIComponent(windowSize)}` +
      `&from=${encodeURIComponent(from)}&limit=1000`;
    try {
      const items = await fetchAllPages(
        path,
        READ_KEY_REQUIRED ? 'Reading the history needs an API key.' : undefined,
        5,
      );
      items.sort((a, b) => a.window_start.localeCompare(b.window_start));
      drawChart(items, Date.parse(from) / 1000);
      const open = items.filter((a) => !a.final).length;
      $('chart-summary').textContent = items.length
        ? `${items.length} windows of ${windowSize}, ${open} still open; last AQI ${items[items.length - 1].aqi} (${items[items.length - 1].aqi_category}).`
        : `No ${windowSize} windows in this range yet.`;
    } catch (error) {
      $('chart-summary').textContent = `The history could not be read: ${error.message}`;
    }
  }

  /** Two series per figure: final windows solid, open windows dashed (joined to the last final). */
  function chartData(items) {
    const xs = items.map((a) => Date.parse(a.window_start) / 1000);
    const lastFinal = items.map((a) => a.final).lastIndexOf(true);
    const split = (field) => [
      items.map((a) => (a.final ? a[field] : null)),
      items.map((a, i) => (!a.final || i === lastFinal ? a[field] : null)),
    ];
    return [xs, ...split('avg_pm25'), ...split('max_pm25'), ...split('aqi')];
  }

  function series(label, color, scale, open) {
    return {
      label: open ? `${label} (open)` : label,
      stroke: color,
      width: 2,
      dash: open ? [6, 4] : undefined,
      scale,
      spanGaps: false,
      points: { show: false },
      value: (u, v) => (v === null || v === undefined ? '–' : v.toFixed(1)),
    };
  }

  /** Shades the open windows behind the lines. */
  function shadeOpenWindows(u, items) {
    const { ctx } = u;
    const { top, height } = u.bbox;
    ctx.save();
    ctx.fillStyle = 'rgba(120, 120, 120, 0.12)';
    for (const a of items) {
      if (a.final) continue;
      const x0 = u.valToPos(Date.parse(a.window_start) / 1000, 'x', true);
      const x1 = u.valToPos(Date.parse(a.window_end) / 1000, 'x', true);
      ctx.fillRect(x0, top, Math.max(1, x1 - x0), height);
    }
    ctx.restore();
  }

  function drawChart(items, fromSeconds) {
    const container = $('chart');
    const width = Math.max(280, container.clientWidth);
    if (state.plot) state.plot.destroy();
    const options = {
      width,
      height: 300,
      cursor: { focus: { prox: 16 } },
      scales: {
        x: { time: true, range: () => [fromSeconds, Date.now() / 1000] },
        pm: { auto: true },
        aqi: { auto: true },
      },
      axes: [
        {},
        { scale: 'pm', label: 'PM2.5 µg/m³' },
        { scale: 'aqi', side: 1, label: 'AQI', grid: { show: false } },
      ],
      series: [
        {
          label: 'window start',
          value: (u, ts) =>
            ts === null || ts === undefined
              ? '–'
              : `${dateTimeFormat.format(new Date(ts * 1000))} (${utc(new Date(ts * 1000).toISOString())})`,
        },
        series('avg PM2.5', COLORS.avg, 'pm', false),
        series('avg PM2.5', COLORS.avg, 'pm', true),
        series('max PM2.5', COLORS.max, 'pm', false),
        series('max PM2.5', COLORS.max, 'pm', true),
        series('AQI', COLORS.aqi, 'aqi', false),
        series('AQI', COLORS.aqi, 'aqi', true),
      ],
      hooks: { drawClear: [(u) => shadeOpenWindows(u, items)] },
    };
    state.plot = new window.uPlot(options, chartData(items), container);
  }

  new ResizeObserver(() => {
    if (state.plot)
      state.plot.setSize({ width: Math.max(280, $('chart').clientWidth), height: 300 });
  }).observe($('chart'));

  // ---- the pipeline ----

  function renderPipeline(p) {
    const ready = $('p-ready');
    const down = Object.entries(p.checks)
      .filter(([, status]) => status !== 'up')
      .map(([name]) => name);
    ready.textContent = p.ready ? 'Ready' : `Not ready (${down.join(', ')} down)`;
    ready.dataset.level = p.ready ? 'ok' : 'bad';
    $('p-ingested').textContent = `${p.rates.ingested_per_s} /s`;
    $('p-stored').textContent = `${p.rates.stored_per_s} /s`;
    $('p-dead').textContent = `${p.rates.dead_lettered_per_s} /s`;
    $('p-consumer').textContent =
      `${p.consumer.state}, ${p.consumer.live_instances} instance${p.consumer.live_instances === 1 ? '' : 's'}`;
    $('p-dlq').textContent = `${p.dlq.pending}${p.dlq.capped ? ' or more' : ''}`;
    $('p-dlq').dataset.level = p.dlq.pending > 0 ? 'warn' : 'ok';
    $('shard-rows').replaceChildren(...p.shards.map((s) => shardRow(s, p.instance)));
    $('dlq-counts').replaceChildren(
      ...(p.dlq.counts.length
        ? p.dlq.counts.map((c) => el('li', { text: `${c.reason}, ${c.status}: ${c.count}` }))
        : [el('li', { text: p.dlq.counted_at ? 'empty' : 'not counted yet' })]),
    );
    const total = p.dlq.counts.reduce((n, c) => n + c.count, 0);
    if (state.dlqTotal !== null && total !== state.dlqTotal && state.dlqShown) void loadDlq();
    state.dlqTotal = total;
  }

  function lagLevel(ms) {
    if (ms === null) return undefined;
    if (ms < 1000) return 'ok';
    return ms < 10_000 ? 'warn' : 'bad';
  }

  function shardRow(s, instance) {
    const owner = s.owner === null ? 'none' : s.owner === instance ? 'this instance' : s.owner;
    const lag =
      s.millis_behind_latest === null
        ? s.held_here
          ? 'not read yet'
          : 'known by its owner'
        : `${s.millis_behind_latest.toLocaleString()} ms`;
    return el(
      'tr',
      { dataset: { shardId: s.shard_id } },
      el('td', { dataset: { label: 'Shard' }, text: s.shard_id }),
      el('td', { dataset: { label: 'Owner' }, title: s.owner || undefined, text: owner }),
      el('td', { dataset: { label: 'State' }, text: s.state }),
      el('td', {
        class: 'num',
        dataset: { label: 'Lag', level: lagLevel(s.millis_behind_latest) },
        text: lag,
      }),
      el(
        'td',
        { dataset: { label: 'Last read' } },
        s.last_read_at ? timeElement(s.last_read_at) : '–',
      ),
    );
  }

  // ---- the dead-letter queue ----

  const DLQ_KEY_REASON = 'The dead-letter queue needs an API key (payloads are operator data).';
  const dlqReason = () => (WRITE_KEY_REQUIRED ? DLQ_KEY_REASON : undefined);

  $('dlq-load').addEventListener('click', () => void loadDlq());
  $('dlq-reason').addEventListener('change', () => void loadDlq());
  $('dlq-more').addEventListener('click', () => void loadDlq(state.dlqCursor));

  async function loadDlq(cursor) {
    const reason = $('dlq-reason').value;
    const query = new URLSearchParams({ limit: '25' });
    if (reason) query.set('reason', reason);
    if (cursor) query.set('cursor', cursor);
    $('dlq-status').textContent = 'Loading…';
    try {
      const response = await apiFetch(`/dlq?${query}`, {}, dlqReason());
      if (!response.ok) throw new Error(await errorText(response));
      const page = await response.json();
      state.dlqShown = true;
      state.dlqCursor = page.next_cursor;
      const rows = page.items.map(dlqRow);
      if (cursor) $('dlq-rows').append(...rows);
      else $('dlq-rows').replaceChildren(...rows);
      $('dlq-table').hidden = false;
      $('dlq-more').hidden = !page.next_cursor;
      $('dlq-load').textContent = 'Refresh';
      const count = $('dlq-rows').children.length;
      $('dlq-status').textContent = count ? `${count} shown.` : 'No entries.';
    } catch (error) {
      $('dlq-status').textContent = `Could not list the entries: ${error.message}`;
    }
  }

  function dlqRow(entry) {
    const inspect = el('button', { type: 'button', text: 'Inspect' });
    inspect.setAttribute('aria-label', `Inspect entry ${entry.id}`);
    inspect.addEventListener('click', () => void inspectDlq(entry.id));
    return el(
      'tr',
      { dataset: { dlqId: entry.id } },
      el('td', { dataset: { label: 'Failed' } }, timeElement(entry.failed_at)),
      el('td', { dataset: { label: 'Reason' }, text: entry.reason }),
      el('td', { dataset: { label: 'Partition key' }, text: entry.partition_key }),
      el('td', { dataset: { label: 'Status' }, text: entry.status }),
      el('td', { class: 'num', dataset: { label: 'Attempts' }, text: String(entry.attempts) }),
      el('td', { dataset: { label: 'Error' }, text: entry.error_message }),
      el('td', { dataset: { label: 'Action' } }, inspect),
    );
  }

  function prettyPayload(entry) {
    if (entry.payload_encoding !== 'utf8') return entry.payload;
    try {
      return JSON.stringify(JSON.parse(entry.payload), null, 2);
    } catch {
      return entry.payload;
    }
  }

  async function inspectDlq(id) {
    const response = await apiFetch(`/dlq/${encodeURIComponent(id)}`, {}, dlqReason());
    if (!response.ok) {
      $('dlq-status').textContent = `Could not read entry ${id}: ${await errorText(response)}`;
      return;
    }
    const entry = await response.json();
    state.dlqSelected = entry;
    $('dlq-detail-title').textContent = `Entry ${entry.id} (${entry.reason}, ${entry.status})`;
    $('dlq-detail-error').textContent =
      `${entry.error_message} · shard ${entry.shard_id}, ${entry.payload_bytes} bytes` +
      `${entry.payload_encoding === 'base64' ? ', not UTF-8: shown as base64' : ''}` +
      `${entry.payload_truncated ? ', cut to fit the table: send a corrected payload' : ''}`;
    $('dlq-payload').textContent = entry.payload;
    $('dlq-corrected').value = prettyPayload(entry);
    $('dlq-message').textContent = '';
    $('dlq-delete-confirm').hidden = true;
    $('dlq-detail').hidden = false;
    $('dlq-detail').focus();
  }

  $('dlq-close').addEventListener('click', () => {
    $('dlq-detail').hidden = true;
    state.dlqSelected = null;
  });

  $('dlq-redrive').addEventListener('click', async () => {
    const entry = state.dlqSelected;
    if (!entry) return;
    const text = $('dlq-corrected').value.trim();
    let body;
    if (text !== prettyPayload(entry).trim()) {
      try {
        body = JSON.stringify({ payload: JSON.parse(text) });
      } catch {
        $('dlq-message').textContent = 'The corrected payload is not valid JSON.';
        return;
      }
    }
    const response = await apiFetch(
      `/dlq/${encodeURIComponent(entry.id)}/redrive`,
      body
        ? { method: 'POST', body, headers: { 'content-type': 'application/json' } }
        : { method: 'POST' },
      dlqReason(),
    );
    $('dlq-message').textContent = response.ok
      ? `Redriven${body ? ' with the corrected payload' : ''}: the record is back on the stream.`
      : `Not redriven: ${await errorText(response)}`;
    if (response.ok) void loadDlq();
  });

  $('dlq-delete').addEventListener('click', () => {
    $('dlq-delete-confirm').hidden = false;
    $('dlq-delete-confirm').focus();
  });

  $('dlq-delete-confirm').addEventListener('click', async () => {
    const entry = state.dlqSelected;
    if (!entry) return;
    const response = await apiFetch(
      `/dlq/${encodeURIComponent(entry.id)}`,
      { method: 'DELETE' },
      dlqReason(),
    );
    $('dlq-delete-confirm').hidden = true;
    if (response.ok) {
      $('dlq-detail').hidden = true;
      state.dlqSelected = null;
      $('dlq-status').textContent = `Entry ${entry.id} deleted.`;
      void loadDlq();
    } else {
      $('dlq-message').textContent = `Not deleted: ${await errorText(response)}`;
    }
  });

  // ---- start ----
  updateCityCount();
  if (READ_KEY_REQUIRED && root.dataset.session !== 'yes') {
    setConnection('Waiting for a key', 'down');
    openSession().then(connect, () => setConnection('Disconnected: no key', 'down'));
  } else {
    connect();
  }
})();
