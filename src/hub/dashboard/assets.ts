/**
 * The dashboard's CSS and JavaScript, inlined into the page: the hub serves
 * everything itself (sites are often offline: no CDN, no build step). The
 * script only keeps a server-rendered page fresh: on a `site` or `ref`
 * event it fetches the page again and swaps the live part in; without
 * JavaScript the page is complete, just not live.
 */
export const CSS = `
:root{--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--conf:#8250df;--mute:#57606a;--bg:#fff;--fg:#1f2328;--line:#d0d7de;--soft:#f6f8fa}
@media (prefers-color-scheme:dark){:root{--ok:#3fb950;--warn:#d29922;--bad:#f85149;--conf:#a371f7;--mute:#8b949e;--bg:#0d1117;--fg:#e6edf3;--line:#30363d;--soft:#161b22}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:baseline;padding:.75rem 1rem;border-bottom:1px solid var(--line)}
header h1{font-size:1.15rem;margin:0}
main{padding:0 1rem 2rem;max-width:1400px}
h2{font-size:1rem;margin:1.25rem 0 .5rem}
.mute{color:var(--mute)}
.counts span{margin-right:.75rem;white-space:nowrap}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:.4rem .6rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;white-space:nowrap}
th{background:var(--soft);font-weight:600;position:sticky;top:0}
tr:last-child td{border-bottom:0}
td.site{font-weight:600}
.v{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}
.cell small{display:block;color:var(--mute);white-space:normal;max-width:16rem}
.cell.degraded{background:color-mix(in srgb,var(--bad) 12%,transparent)}
.cell.conflict{background:color-mix(in srgb,var(--conf) 12%,transparent)}
.cell.progressing{background:color-mix(in srgb,var(--warn) 12%,transparent)}
.cond summary{cursor:pointer}
.cond summary,.cond .pill{list-style:none;display:inline-block;padding:.05rem .5rem;border-radius:1rem;font-size:.85em;font-weight:600;border:1px solid currentColor}
.cond summary::-webkit-details-marker{display:none}
.cond .why{white-space:normal;max-width:28rem;margin-top:.3rem;font-size:.85em}
.c-ready{color:var(--ok)}.c-degraded,.c-failed,.c-stalled{color:var(--bad)}.c-conflict{color:var(--conf)}
.c-progressing,.c-waiting{color:var(--warn)}.c-stale,.c-stopped,.c-other{color:var(--mute)}
ol.timeline{list-style:none;padding:0;margin:0}
ol.timeline li{padding:.35rem 0;border-bottom:1px solid var(--line);display:flex;gap:.6rem;flex-wrap:wrap}
ol.timeline time{color:var(--mute);min-width:5.5rem}
.kind{font-size:.8em;font-weight:600;text-transform:uppercase;letter-spacing:.03em}
#conn{font-size:.85em}
@media (max-width:640px){body{font-size:14px}main{padding:0 .5rem 2rem}th,td{padding:.35rem .4rem}header{padding:.6rem .5rem}}
`;

export const SCRIPT = `
(function(){
  var conn=document.getElementById('conn');
  function age(ms){var s=Math.max(0,Math.round(ms/1000));if(s<90)return s+' s ago';var m=Math.round(s/60);if(m<90)return m+' min ago';var h=Math.round(m/60);if(h<48)return h+' h ago';return Math.round(h/24)+' d ago';}
  function tick(){var now=Date.now();document.querySelectorAll('[data-at]').forEach(function(e){var t=Date.parse(e.getAttribute('data-at'));if(!isNaN(t))e.textContent=age(now-t);});}
  setInterval(tick,1000);tick();
  // A big fleet reports many times a second: at most one refresh in flight and one every 500 ms.
  var busy=false,again=false,last=0;
  function refresh(){
    if(busy){again=true;return;}
    var wait=last+500-Date.now();
    if(wait>0){busy=true;setTimeout(function(){busy=false;refresh();},wait);return;}
    busy=true;last=Date.now();
    var open=[].map.call(document.querySelectorAll('details[open][data-key]'),function(d){return d.getAttribute('data-key');});
    fetch(location.pathname+location.search,{cache:'no-store',credentials:'same-origin',headers:{accept:'text/html'}}).then(function(r){
      if(!r.ok)throw new Error('HTTP '+r.status);return r.text();
    }).then(function(html){
      var doc=new DOMParser().parseFromString(html,'text/html');
      var next=doc.getElementById('live'),cur=document.getElementById('live');
      if(next&&cur){cur.replaceWith(next);open.forEach(function(k){var d=document.querySelector('details[data-key="'+CSS.escape(k)+'"]');if(d)d.open=true;});tick();}
    }).catch(function(e){conn.textContent='refresh failed: '+e.message;}).then(function(){busy=false;if(again){again=false;refresh();}});
  }
  if(!window.EventSource){conn.textContent='not live (no EventSource)';return;}
  var es=new EventSource('/api/v1/events?sites=1');
  es.addEventListener('site',refresh);
  es.addEventListener('ref',refresh);
  es.addEventListener('resync',refresh);
  es.onopen=function(){conn.textContent='● live';conn.className='c-ready';refresh();};
  es.onerror=function(){conn.textContent='○ reconnecting…';conn.className='c-stale';};
})();
`;
