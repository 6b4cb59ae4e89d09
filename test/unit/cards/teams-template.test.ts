// biome-ignore-all lint/suspicious/noTemplateCurlyInString: template bindings written as plain strings are the input under test.
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileTemplate, TemplateCompileError } from '../../../cards/teams/template.js';
import incidentTemplate from '../../../cards/teams/templates/incident.json' with { type: 'json' };
import taskListTemplate from '../../../cards/teams/templates/task-list.json' with { type: 'json' };

/** The reference implementation of the templating language: what the compiled templates must equal. */
const { Template } = createRequire(import.meta.url)('adaptivecards-templating') as {
  Template: new (payload: unknown) => { expand(context: { $root: unknown }): unknown };
};

function reference(template: unknown, data: unknown): unknown {
  return new Template(template).expand({ $root: data });
}

// Text as incident data carries it: template syntax, quotes, markdown, empty strings, emoji.
const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('', '${title}', '${secret} x', "it's", 'a "quoted" `b`', '\\n', '🔥 x', '}{$'),
);
const line = fc.record({ text });
const lines = fc.array(line, { maxLength: 3 });
const color = fc.constantFrom('Default', 'Good', 'Warning', 'Attention', 'Accent');
const action = fc.oneof(
  fc.record({
    kind: fc.constant('execute'),
    title: text,
    verb: fc.constantFrom('approve', 'reject', 'markDone'),
    style: fc.constantFrom('positive', 'destructive', 'default'),
    incidentId: text,
    actionId: text,
    url: fc.constant(''),
  }),
  fc.record({ kind: fc.constant('link'), title: text, url: text }),
);
const incidentData = fc.record({
  incidentId: text,
  incidentText: text,
  refresh: fc.record({ enabled: fc.boolean(), userIds: fc.array(text, { maxLength: 3 }) }),
  notice: text,
  title: text,
  severity: fc.record({ icon: text, label: text, color }),
  facts: fc.array(fc.record({ title: text, value: text }), { minLength: 1, maxLength: 4 }),
  assets: fc.array(fc.record({ title: text, lines }), { maxLength: 3 }),
  summary: text,
  groups: fc.array(
    fc.record({
      title: text,
      color,
      more: text,
      items: fc.array(
        fc.record({
          icon: text,
          text,
          status: text,
          color,
          details: lines,
          steps: lines,
          choices: fc.array(
            fc.record({
              id: text,
              label: text,
              value: text,
              options: fc.array(fc.record({ title: text, value: text }), { maxLength: 3 }),
            }),
            { maxLength: 1 },
          ),
          actions: fc.array(action, { maxLength: 3 }),
        }),
        { maxLength: 3 },
      ),
    }),
    { maxLength: 3 },
  ),
  links: fc.array(fc.record({ title: text, url: text }), { maxLength: 2 }),
});
const taskListData = fc.record({
  heading: text,
  tasks: fc.array(
    fc.record({
      text,
      status: text,
      color,
      done: fc.boolean(),
      details: lines,
      incidentId: text,
      actionId: text,
    }),
    { maxLength: 4 },
  ),
  more: text,
  links: fc.array(fc.record({ title: text, url: text }), { maxLength: 2 }),
});

describe('compileTemplate', () => {
  const incident = compileTemplate(incidentTemplate);
  const taskList = compileTemplate(taskListTemplate);

  it('expands the incident card template exactly as adaptivecards-templating does', () => {
    fc.assert(
      fc.property(incidentData, (data) => {
        expect(incident(data)).toEqual(reference(incidentTemplate, data));
      }),
      { numRuns: 300 },
    );
  });

  it('expands the task list template exactly as adaptivecards-templating does', () => {
    fc.assert(
      fc.property(taskListData, (data) => {
        expect(taskList(data)).toEqual(reference(taskListTemplate, data));
      }),
      { numRuns: 300 },
    );
  });

  it('shows a binding with no value as the binding itself, like the templating library', () => {
    const template = { type: 'TextBlock', text: '${missing.value}', label: 'a ${missing} b' };
    expect(compileTemplate(template)({})).toEqual(reference(template, {}));
    expect(compileTemplate(template)({})).toEqual({
      type: 'TextBlock',
      text: '${missing.value}',
      label: 'a ${missing} b',
    });
  });

  it('refuses at compile time what it does not implement', () => {
    expect(() => compileTemplate({ text: '${if(a, b, c)}' })).toThrow(TemplateCompileError);
    expect(() => compileTemplate({ $when: '${a && b}', text: 'x' })).toThrow(TemplateCompileError);
    expect(() => compileTemplate({ $data: 'items', text: 'x' })).toThrow(TemplateCompileError);
    expect(() => compileTemplate({ text: '${$root.title}' })).toThrow(TemplateCompileError);
  });
});
