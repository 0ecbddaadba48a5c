// The html template tag shared by every server-rendered page: escaping is what it is for.
import { describe, expect, it } from 'vitest';
import { escapeHtml, html, raw } from '../../src/platform/html.ts';

describe('html', () => {
  it('escapes every interpolated string, including inside attributes, but not built markup', () => {
    const evil = `"><script>alert('x')</script>&`;
    const out = html`<a title="${evil}">${evil}</a>${html`<b>${evil}</b>`}${raw('<i>ok</i>')}`;
    expect(out.value).toBe(
      '<a title="&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;">&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;</a><b>&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;</b><i>ok</i>',
    );
  });

  it('renders lists, numbers and bigints, and nothing for null, undefined and false', () => {
    expect(html`${['<a>', raw('<b/>')]}|${1}|${2n}|${null}|${undefined}|${false}`.value).toBe(
      '&lt;a&gt;<b/>|1|2|||',
    );
  });
});

describe('escapeHtml', () => {
  it('escapes the five characters that end text or a quoted attribute', () => {
    expect(escapeHtml(`<a href='x' title="y">&</a>`)).toBe(
      '&lt;a href=&#39;x&#39; title=&quot;y&quot;&gt;&amp;&lt;/a&gt;',
    );
  });
});
