import type { AnyStateMachine, AnyStateNode } from 'xstate';

export interface MachineTransition {
  source: string;
  event: string;
  /** Target state keys; empty for a targetless (internal) transition. */
  targets: string[];
  actions: string[];
  guard?: string;
}

export interface MachineState {
  /** Dotted path from the root, e.g. `running` or `running.warmup`. */
  id: string;
  key: string;
  type: string;
  initial?: string;
  final: boolean;
  /** Child states (compound machines); empty for atomic states. */
  states: string[];
  transitions: MachineTransition[];
}

/** A machine's structure, for any visualizer: derived from XState's own definition, never hand-written. */
export interface MachineDefinition {
  id: string;
  initial: string;
  states: MachineState[];
  events: string[];
  transitions: MachineTransition[];
  finalStates: string[];
}

/** Walks `machine.root` and lists every state, transition and event. */
export function describeMachine(machine: AnyStateMachine): MachineDefinition {
  const rootId = machine.root.id;
  const states: MachineState[] = [];
  const all: MachineTransition[] = [];
  const pathOf = (node: AnyStateNode): string => node.path.join('.');
  const targetPath = (t: AnyStateNode): string => pathOf(t);

  const visit = (node: AnyStateNode) => {
    for (const child of Object.values(node.states) as AnyStateNode[]) {
      const transitions: MachineTransition[] = [];
      for (const [event, list] of child.transitions) {
        for (const t of list) {
          const tr: MachineTransition = {
            source: pathOf(child),
            event,
            targets: (t.target ?? []).map(targetPath),
            actions: t.actions.map(actionName).filter((a): a is string => a !== undefined),
          };
          const guard = guardName(t.guard);
          if (guard) tr.guard = guard;
          transitions.push(tr);
        }
      }
      const initialTarget = child.initial?.target?.[0];
      const st: MachineState = {
        id: pathOf(child),
        key: child.key,
        type: child.type,
        final: child.type === 'final',
        states: (Object.values(child.states) as AnyStateNode[]).map(pathOf),
        transitions,
      };
      if (initialTarget) st.initial = pathOf(initialTarget);
      states.push(st);
      all.push(...transitions);
      visit(child);
    }
  };
  visit(machine.root);
  const initial = machine.root.initial?.target?.[0];
  return {
    id: rootId,
    initial: initial ? pathOf(initial) : '',
    states,
    events: [...new Set(all.map((t) => t.event))],
    transitions: all,
    finalStates: states.filter((s) => s.final).map((s) => s.id),
  };
}

function actionName(a: unknown): string | undefined {
  if (typeof a === 'string') return a;
  if (a && typeof a === 'object' && 'type' in a && typeof (a as { type: unknown }).type === 'string') return (a as { type: string }).type;
  if (typeof a === 'function') return a.name || undefined;
  return undefined;
}

function guardName(g: unknown): string | undefined {
  if (!g) return undefined;
  if (typeof g === 'string') return g;
  if (typeof g === 'object' && 'type' in g) return String((g as { type: unknown }).type);
  if (typeof g === 'function') return g.name || 'inline';
  return undefined;
}
