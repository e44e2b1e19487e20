// The shapes of the REST API's answers (docs/api.md).

export interface Resources {
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
}

export interface Workspace {
  workspace_id: string;
  name: string;
  state: string;
  ip: string;
  base_image: string;
  resources: Resources;
  network: { allow_internet: boolean; allow_inter_vm: boolean; allowed_ports: number[] };
  owned: boolean;
  owner_session?: string;
  created_at: string;
  started_at?: string;
  uptime_secs: number;
  boot_time_ms: number;
  from_pool: boolean;
  forked_from?: { source_workspace_id: string; snapshot_name: string };
  disk_used_bytes: number;
  last_error?: string;
  port_forwards?: { guest_port: number; host_port: number; created_at: string }[];
}

export interface HostStats {
  time: string;
  vms_running: number;
  vms_total: number;
  max_total_vms: number;
  vm_memory_mb: number;
  memory_total_bytes: number;
  memory_available_bytes: number;
  disk_total_bytes: number;
  disk_free_bytes: number;
  load1: number;
  pool?: { ready: number; target: number };
}

export interface Features {
  workspaces: boolean;
  terminal: boolean;
  snapshots: boolean;
  network: boolean;
  teams: boolean;
  vault: boolean;
  pool: boolean;
}

export interface AuditEntry {
  id: number;
  time: string;
  session_id: string;
  actor: string;
  action: string;
  target: string;
  result: string;
  error_class?: string;
  duration_ms: number;
}

export interface ExecResult {
  exit_code: number;
  stdout: string;
  stderr: string;
  truncated: boolean;
  duration_ms: number;
}

export interface Session {
  logged_in: boolean;
  session_id: string;
  csrf_token: string;
  expires_at: string;
}

export interface Snapshot {
  snapshot_id: string;
  name: string;
  workspace_id: string;
  has_memory: boolean;
  created_at: string;
  /** The parent snapshot's name; null for the first. */
  parent: string | null;
  disk_bytes: number;
  memory_bytes: number;
  forks: number;
}

export interface SnapshotList {
  snapshots: Snapshot[];
  count: number;
}

export interface RestoreResult {
  workspace_id: string;
  name: string;
  state: string;
  has_memory: boolean;
  removed_snapshots: string[];
  message: string;
}

export interface ForkResult {
  source_workspace_id: string;
  snapshot_name: string;
  forks: Workspace[];
  failures: { index: number; name: string; error: string }[];
}

export interface VaultEntry {
  path: string;
  is_dir: boolean;
  size: number;
  modified: string;
}

export interface VaultNote {
  path: string;
  content: string;
  size: number;
  modified: string;
  frontmatter: Record<string, unknown> | null;
  frontmatter_error?: string;
  tags: string[];
  links: { target: string; line: number; path?: string }[];
  backlinks: { path: string; line: number; target: string }[];
}

export interface VaultHit {
  path: string;
  line_number: number;
  line: string;
  context: string;
}

export interface TeamMember {
  name: string;
  role: string;
  skills: string[];
  description: string;
  workspace_id: string;
  workspace_name: string;
  state: string;
  ip: string;
  unread_messages: number;
  pending_tasks: number;
}

export interface Task {
  id: string;
  path: string;
  title: string;
  /** One of the board's statuses; empty when the note is invalid. */
  status: string;
  owner: string;
  depends_on: string[];
  modified: string;
  /** Why the note is not a valid task; such a task has no column. */
  invalid?: string;
}

export interface Board {
  team: string;
  statuses: string[];
  tasks: Task[];
}

export interface Team {
  name: string;
  state: string;
  parent_team?: string;
  sub_teams: string[];
  max_vms: number;
  used_vms: number;
  members: TeamMember[];
  created_at: string;
  /** Absent when the vault, where boards live, is disabled. */
  board?: Board;
}

export interface TeamMessage {
  id: number;
  from: string;
  to: string[];
  message_type: string;
  content: string;
  sent_at: string;
  read_by: string[];
}

export interface PortForwardResult {
  workspace_id: string;
  action: string;
  guest_port: number;
  host_port: number;
  guest_ip: string;
  message: string;
}
