import { bytes } from "../format";
import { useStore } from "../store";
import { Sparkline } from "./Sparkline";

/** Host metrics with small charts of the last minutes. */
export function Host() {
  const host = useStore((s) => s.host);
  const last = host[host.length - 1];
  if (!last) return <p className="muted">Waiting for the first host sample…</p>;
  const memUsed = host.map((h) => h.memory_total_bytes - h.memory_available_bytes);
  const diskUsed = host.map((h) => h.disk_total_bytes - h.disk_free_bytes);
  return (
    <section>
      <header className="page-head">
        <h2>Host</h2>
      </header>
      <div className="cards">
        <div className="card">
          <h3>VMs</h3>
          <p className="big">
            {last.vms_running} running <span className="muted">/ {last.vms_total} workspaces, at most {last.max_total_vms}</span>
          </p>
          <Sparkline label="running VMs" values={host.map((h) => h.vms_running)} max={last.max_total_vms} />
        </div>
        <div className="card">
          <h3>Memory</h3>
          <p className="big">
            {bytes(last.memory_total_bytes - last.memory_available_bytes)} <span className="muted">of {bytes(last.memory_total_bytes)}; guests {last.vm_memory_mb} MiB</span>
          </p>
          <Sparkline label="host memory used" values={memUsed} max={last.memory_total_bytes} />
        </div>
        <div className="card">
          <h3>Disk</h3>
          <p className="big">
            {bytes(last.disk_free_bytes)} free <span className="muted">of {bytes(last.disk_total_bytes)}</span>
          </p>
          <Sparkline label="disk used" values={diskUsed} max={last.disk_total_bytes} />
        </div>
        <div className="card">
          <h3>Load</h3>
          <p className="big">{last.load1.toFixed(2)}</p>
          <Sparkline label="load average" values={host.map((h) => h.load1)} />
        </div>
        <div className="card">
          <h3>Warm pool</h3>
          <p className="big">{last.pool ? `${last.pool.ready} ready of ${last.pool.target}` : <span className="muted">off on this daemon ([pool] enabled = false)</span>}</p>
        </div>
      </div>
    </section>
  );
}
