/** The Russian catalogs, loaded when the language is chosen (web/i18n/index.ts). */
export default import.meta.glob<Record<string, string>>('./ru/*.json', { eager: true, import: 'default' });
