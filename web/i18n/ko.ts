/** The Korean catalogs, loaded when the language is chosen (web/i18n/index.ts). */
export default import.meta.glob<Record<string, string>>('./ko/*.json', { eager: true, import: 'default' });
