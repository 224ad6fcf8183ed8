import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { ROOT } from './helpers/daemon.js';

const UNIT = join(ROOT, 'config/sessiond.service');

function directives(): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of readFileSync(UNIT, 'utf8').split('\n')) {
    const x = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (x) m.set(x[1]!, [...(m.get(x[1]!) ?? []), x[2]!]);
  }
  return m;
}

test('systemd-analyze security rates the unit 2.5 or better', (t) => {
  if (!existsSync('/usr/bin/systemd-analyze')) return t.fail('systemd-analyze is part of Debian systemd: install it');
  const r = spawnSync('/usr/bin/systemd-analyze', ['security', '--offline=yes', '--no-pager', UNIT], { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  const score = Number(/Overall exposure level for sessiond\.service: ([\d.]+)/.exec(out)?.[1]);
  t.true(Number.isFinite(score), out);
  t.true(score <= 2.5, `exposure ${score}\n${out}`);
});

test('the hardened unit still writes its StateDirectory and reaches Redis and venues', (t) => {
  const d = directives();
  t.deepEqual(d.get('StateDirectory'), ['sessiond']);
  t.deepEqual(d.get('ProtectSystem'), ['strict'], 'only the state directory is writable');
  t.deepEqual(d.get('WorkingDirectory'), ['/var/lib/sessiond']);
  const families = (d.get('RestrictAddressFamilies') ?? []).join(' ').split(/\s+/);
  for (const f of ['AF_INET', 'AF_INET6', 'AF_UNIX']) t.true(families.includes(f), f);
  t.is(d.get('PrivateNetwork'), undefined, 'Redis and venues are on the network');
  t.is(d.get('IPAddressDeny'), undefined);
  t.is(d.get('MemoryDenyWriteExecute'), undefined, "V8's JIT needs W+X memory");
  t.deepEqual(d.get('NotifyAccess'), ['all'], 'READY=1 comes from systemd-notify, a child');
});
