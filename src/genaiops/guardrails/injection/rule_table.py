"""The injection rules, as data: one block per rule in the line format that
``rules._parse`` reads (see the rules module's docstring for the format). Kept apart from
the matching code so that adding or tuning a rule touches only this table."""

TABLE = r"""
# --- instruction override
en.override.previous; instruction_override; en; 0.95
  = ignor|disregard|forget|overrid|skip|bypass|neglect|abandon|drop|discard
    \b(?:ignore|ignoring|disregard|forget|override|skip|bypass|neglect|abandon|drop|
    discard) (?:(?:all|any|every|each|the|your|these|those|of) ){0,3}<EN_PREV> <EN_INSTR>\b
    <NOT_DOCUMENT>
en.override.your; instruction_override; en; 0.9
  = ignor|disregard|forget|overrid|bypass
    \b(?:ignore|disregard|forget|override|bypass) (?:all |any )?(?:of )?your (?:own )?(?:<EN_INSTR>|
    system prompt|training|safety|restrictions|filters)
en.override.everything; instruction_override; en; 0.85
  = ignor|disregard|forget
    \b(?:ignore|disregard|forget) (?:all )?(?:of )?(?:the above|what (?:was|is) (?:said|
    written) above|what came before)(?= and| then| instead|\s*[,;.:!]|\s*$)|\b(?:ignore|disregard|
    forget) (?:everything|all|anything) (?:(?:that )?(?:was |you were |i |we |has been )?(?:said|
    told|written|given|stated) )?(?:above|before|so far|previously|earlier|prior to this|
    up to (?:now|this point))
en.override.regardless; instruction_override; en; 0.8
  = regardless|no matter|irrespective
    \b(?:regardless of|no matter|irrespective of) what (?:you (?:were|have been|ve been) (?:told|
    instructed|programmed|set up|asked)|your (?:instructions|rules|guidelines|system prompt) (?:say|
    said|tell you))
es.override.regardless; instruction_override; es; 0.8
  = importar|independiente|hayan
    \b(?:sin importar|independientemente de) (?:lo )?que (?:te )?(?:hayan|han) (?:dicho|indicado|
    ordenado|programado|configurado)|\bte hayan (?:dicho|indicado|
    ordenado) lo que te hayan (?:dicho|indicado|ordenado)
pt.override.regardless; instruction_override; pt; 0.8
  = independente|importa|seja la
    \b(?:independentemente do|nao importa o|seja la o) que (?:te |lhe )?(?:disseram|instruiram|
    mandaram|programaram|configuraram|orientaram)
en.override.void; instruction_override; en; 0.85
  = instruction|rules|prompt|direct|guideline|command|order|constraint|guidance|programming
    \b(?:your|the|all|these) (?:<EN_PREV> <EN_INSTR>|<EN_INSTR> (?:above|before this|
    you (?:were given|received|got))) (?:are|is|were|have been) (?:now )?(?:void|cancel+ed|revoked|
    obsolete|null|invalid|no longer (?:valid|active|apply|relevant)|overridden|suspended|lifted|
    replaced)|\b(?:has|have|had) (?:revoked|cancel+ed|voided|lifted|removed|disabled|
    withdrawn) (?:all )?(?:of )?your (?:<EN_PREV> )?<EN_INSTR>
en.override.dont_follow; instruction_override; en; 0.85
  = follow|obey
    \b(?:do not|don ?t|stop|no longer|never) (?:follow|obey)(?:ing)? (?:your|the|
    any) (?:<EN_PREV> )?(?:<EN_INSTR>|system prompt)
es.override.previous; instruction_override; es; 0.95
  = ignor|olvid|omit|descart|desestim|caso omiso|no hagas caso|pasa por alto|salta|atencion
    \b(?:ignora|ignore|ignoren|ignorar|olvida|olvide|olviden|olvidar|olvidate de|omite|omita|
    descarta|descarte|desestima|haz caso omiso (?:a|de)|no hagas caso (?:a|de)|pasa por alto|
    saltate|no prestes atencion a) (?:(?:todas|todos|las|los|tus|sus|cualquier|
    de) ){0,3}<ES_INSTR> <ES_PREV>\b<NOT_DOCUMENT>
es.override.your; instruction_override; es; 0.9
  = ignor|olvid|omit|descart
    \b(?:ignora|ignore|ignorar|olvida|olvide|omite|omita|descarta) (?:todas )?(?:tus|sus|tu|
    su) (?:propias )?(?:<ES_INSTR>|prompt de sistema|entrenamiento|filtros|politicas)
es.override.everything; instruction_override; es; 0.85
  = ignor|olvid
    \b(?:ignora|ignore|olvida|olvide|olvidate de) (?:todo )?(?:lo )?(?:que (?:te )?(?:dijeron|
    han dicho|hayan dicho|se dijo) )?(?:todo )?(?:lo )?(?:anterior|de arriba|(?:dicho|
    escrito) (?:antes|arriba|hasta ahora))
es.override.void; instruction_override; es; 0.85
  = instruc|regla|indicac|orden|directri|norma|consigna|directiva|restricc|pauta|orienta
    \b(?:las |tus |sus )?<ES_INSTR> <ES_PREV> (?:ya )?(?:no (?:son validas|valen|aplican|cuentan|
    estan vigentes|tienen efecto)|quedan (?:anuladas|canceladas|sin efecto|revocadas)|
    han sido (?:anuladas|canceladas|revocadas|reemplazadas))|\b(?:ha|han|he) (?:revocado|anulado|
    cancelado|invalidado|eliminado|desactivado) (?:todas )?(?:tus|sus) <ES_INSTR>
es.override.dont_follow; instruction_override; es; 0.85
  = sigas|obedezcas|seguir|obedecer|cumpl
    \b(?:no|deja de) (?:sigas|obedezcas|seguir|obedecer|cumplas|cumplir) (?:mas )?(?:las |tus |sus |
    al |el )?(?:<ES_INSTR>|prompt del sistema|prompt de sistema)
pt.override.previous; instruction_override; pt; 0.95
  = ignor|esquec|desconsider|descart|desprez|deixe de lado|pule
    \b(?:ignore|ignora|ignorar|ignorem|esqueca|esquece|esquecer|esquecam|desconsidere|desconsidera|
    descarte|descarta|despreze|deixe de lado|pule) (?:(?:todas|todos|as|os|suas|seus|tuas|quaisquer|
    de) ){0,3}<PT_INSTR> <PT_PREV>\b<NOT_DOCUMENT>
pt.override.your; instruction_override; pt; 0.9
  = ignor|esquec|desconsider|descart
    \b(?:ignore|ignora|ignorar|esqueca|esquece|desconsidere|descarte) (?:todas )?(?:as |os |o |
    a )?(?:suas|seus|tuas|teus|seu|sua|teu|tua) (?:proprias )?(?:<PT_INSTR>|prompt de sistema|
    treinamento|filtros|politicas)
pt.override.everything; instruction_override; pt; 0.85
  = ignor|esquec|desconsider
    \b(?:ignore|ignora|esqueca|esquece|desconsidere) (?:tudo )?(?:o )?(?:que (?:te |
    lhe )?(?:foi dito|disseram|foi escrito|veio|esta) )?(?:acima|antes|ate agora|
    anteriormente)
pt.override.void; instruction_override; pt; 0.85
  = instruc|regra|orienta|ordens|diretriz|comando|diretiva|restric
    \b(?:as |suas )?<PT_INSTR> <PT_PREV> (?:ja )?(?:nao (?:valem|sao validas|se aplicam|contam|
    estao em vigor)(?: mais)?|(?:foram|estao) (?:anuladas|canceladas|revogadas|substituidas))|
    \b(?:revogou|anulou|cancelou|removeu|desativou|revogaram|anularam) (?:todas )?(?:as |
    os )?(?:suas|seus) <PT_INSTR>
pt.override.dont_follow; instruction_override; pt; 0.85
  = siga|obedeca|seguir|obedecer|cumpr
    \b(?:nao|pare de|deixe de) (?:siga|obedeca|seguir|obedecer|cumpra|cumprir) (?:mais )?(?:as |os |
    ao |o )?(?:suas |seus )?(?:<PT_INSTR>\b<NOT_THIRD_PARTY>|prompt do sistema|prompt de sistema)
# --- personas, developer mode, DAN, jailbreak
any.jailbreak.dan; jailbreak_persona; any; 0.9
  = dan|anything now|stan|dude|aim|mongo|cualquier cosa|qualquer coisa
    \b(?:you are|you re|act as|pretend to be|become|eres|actua como|finge ser|fingir ser|voce e|
    aja como|finja ser|fingir que e|seras|sera) (?:now |ahora |agora )?(?:the |el |o )?(?:dan|stan|
    dude|aim|mongo tom)\b|\bdo anything now\b|\bhaz cualquier cosa ahora\b|
    \bfaca qualquer coisa agora\b|\b(?:dan|stan|dude) mode\b|\bmodo (?:dan|stan)\b
en.jailbreak.devmode; jailbreak_persona; en; 0.9
  = mode
    \b(?:enable|enabled|activate|activated|enter|entering|switch to|turn on|unlock|simulate|now in|
    you are in) (?:the )?(?:developer|dev|god|debug|admin|sudo|jailbreak|unrestricted|unfiltered|
    evil|chaos|maintenance|opposite|root) mode\b<NOT_DEVICE>|\b(?:developer|dev|god|jailbreak|
    unrestricted) mode (?:is )?(?:enabled|activated|on|unlocked)\b<NOT_DEVICE>|\b(?:ai|assistant|
    model|chatbot|you are|you re) in (?:god|developer|dev|jailbreak|unrestricted|unfiltered|dan|
    evil) mode\b
en.jailbreak.persona; jailbreak_persona; en; 0.9
  = act|pretend|roleplay|role-play|role play|imagine|simulate|play|behave
    \b(?:act|acting|behave|respond) (?:as|like) (?:an? |the )?(?:\w+ ){0,4}?<EN_UNRESTRICTED>|
    \b(?:pretend|imagine) (?:that )?(?:you are|you re|
    to be) (?:an? )?(?:\w+ ){0,2}?<EN_UNRESTRICTED>|\b(?:roleplay|role play|play the role of|
    simulate) (?:as )?(?:an? )?(?:\w+ ){0,2}?<EN_UNRESTRICTED>
en.jailbreak.jailbroken; jailbreak_persona; en; 0.85
  = jailbr|refus|character
    \byou (?:are|re|have been) (?:now )?(?:jailbroken|freed|liberated|unchained)\b|\b(?:you will|
    you must|you can|you shall) never refuse\b|\bnever break character\b|
    \bstay in character (?:no matter what|at all times|whatever happens)|\bjailbreak (?:enabled|
    activated|successful|mode)
es.jailbreak.devmode; jailbreak_persona; es; 0.9
  = modo
    \b(?:activa|activar|habilita|habilitar|entra en|entra al|pasa al|pasa a|cambia a|enciende|
    estas en|ahora en) (?:el )?modo (?:desarrollador|developer|dios|depuracion|administrador|
    sin restricciones|sin filtros|sin censura|jailbreak|libre|sudo|opuesto|caos|mantenimiento|
    root)\b<NOT_DEVICE>|\bmodo (?:desarrollador|dios|sin restricciones|sin filtros|
    jailbreak) (?:esta )?(?:activado|habilitado|encendido)|\b(?:ia|asistente|modelo|chatbot|
    estas) en modo (?:dios|desarrollador|sin restricciones|sin filtros|jailbreak|dan)\b
es.jailbreak.persona; jailbreak_persona; es; 0.9
  = actua|comportate|finge|fingir|imagina|interpreta|simula|haz de|responde
    \b(?:actua|actuar|comportate|responde) como (?:una? |el |la )?(?:\w+ ){0,4}?<ES_UNRESTRICTED>|
    \b(?:finge|fingir|imagina|imaginate) (?:que eres|ser) (?:una? )?(?:\w+ ){0,2}?<ES_UNRESTRICTED>|
    \b(?:interpreta|simula|haz de) (?:el papel de )?(?:una? )?(?:\w+ ){0,2}?<ES_UNRESTRICTED>
es.jailbreak.never_refuse; jailbreak_persona; es; 0.85
  = rechaz|niegue|negar|personaje|liberad|desbloquead
    \bnunca (?:rechaces|te niegues|rechazaras|te negaras|digas que no)\b|
    \bno salgas (?:nunca )?del personaje\b|\b(?:has sido|estas|fuiste) (?:liberad[oa]|
    desbloquead[oa])\b
pt.jailbreak.devmode; jailbreak_persona; pt; 0.9
  = modo
    \b(?:ative|ativar|ativa|habilite|habilitar|entre no|entre em|mude para|passe para|ligue|
    voce esta no|agora no) (?:o )?modo (?:desenvolvedor|developer|deus|depuracao|administrador|
    sem restricoes|sem filtros|sem censura|jailbreak|livre|sudo|oposto|caos|manutencao|
    root)\b<NOT_DEVICE>|
    \bmodo (?:desenvolvedor|deus|sem restricoes|sem filtros|jailbreak) (?:esta )?(?:ativado|
    habilitado|ligado)|\b(?:ia|assistente|modelo|chatbot|esta) em modo (?:deus|desenvolvedor|
    sem restricoes|sem filtros|jailbreak|dan)\b
pt.jailbreak.persona; jailbreak_persona; pt; 0.9
  = aja|atue|comporte|finja|fingir|imagine|interprete|simule|faca o papel|responda
    \b(?:aja|atue|comporte-?se|responda) como (?:uma? |o |a )?(?:\w+ ){0,4}?<PT_UNRESTRICTED>|
    \b(?:finja|fingir|imagine) (?:que (?:voce )?e|ser) (?:uma? )?(?:\w+ ){0,2}?<PT_UNRESTRICTED>|
    \b(?:interprete|simule|faca o papel de) (?:uma? )?(?:\w+ ){0,2}?<PT_UNRESTRICTED>
pt.jailbreak.never_refuse; jailbreak_persona; pt; 0.85
  = recus|negue|diga nao|personagem|liberad|desbloquead
    \bnunca (?:recuse|se recuse|recusara|se negue|diga nao)\b|\bnao saia (?:nunca )?do personagem\b|
    \b(?:voce foi|voce esta|foi) (?:liberad[oa]|desbloquead[oa])\b
# --- system prompt extraction
en.extract.prompt; prompt_extraction; en; 0.9; asks
  = prompt|instruction|message|rules|guideline|config|setup|settings|notes
    \b(?:reveal|print|show|display|output|repeat|tell|give|share|leak|dump|write (?:out|down)|
    recite|list|paste|send|expose|disclose|spell out|copy|translate|summari[sz]e|what (?:is|are|was|
    were)) (?:me |us )?(?:all (?:of )?)?your (?:\w+ ){0,2}?(?:system prompt|system message|
    (?:initial|original|hidden|secret|internal|full|exact|first|confidential|
    system) (?:instructions|prompt|rules|message|guidelines)|pre ?prompt|developer (?:message|
    instructions)|configuration prompt|(?:confidential|hidden|secret|internal) (?:configuration|
    config|setup|settings|notes))
en.extract.above; prompt_extraction; en; 0.85; asks
  = above|text|words|instruction|everything|given|received
    \b(?:repeat|print|output|show|dump|recite|copy) (?:me )?(?:the |all (?:of )?(?:the )?)?(?:text|
    words|instructions|everything|messages?|content) (?:(?:written |that (?:appears|is|
    came) )?(?:above|before (?:this|my first)|preceding|at the (?:start|beginning))(?! (?:in|as|
    into) (?:bullet|a (?:bulleted |numbered |short )?list|a table|a summary|plain|simpler|
    shorter|spanish|english|portuguese|french))|you (?:were|have been) given)|\b(?:repeat|
    print|output|show|tell me|list|reveal|what (?:are|were)) (?:me )?(?:the )?(?:instructions|
    rules|guidelines|prompt) (?:that )?you (?:were given|have been given|received|got)\b
en.extract.the; prompt_extraction; en; 0.6
  = prompt
    \b(?:reveal|print|show|output|repeat|leak|dump|disclose|expose) (?:me )?the (?:full |entire |
    complete |exact |hidden |secret )*(?:system prompt|system message|pre ?prompt)
es.extract.prompt; prompt_extraction; es; 0.9; asks
  = prompt|instrucc|mensaje|indicac|regla|configuracion
    \b(?:muestra|muestrame|mostrar|mostrarme|revela|revelame|revelar|dime|decir|decirme|imprime|
    imprimir|repite|repetir|escribe|comparte|compartir|ensena|ensename|copia|filtra|expon|deletrea|
    traduce|resume|devuelve|devuelveme|pega|cita|cual es|cuales son|dame|
    darme) (?:\w+ ){0,2}?(?:todas )?(?:tu|tus) (?:\w+ ){0,2}?(?:prompt (?:del|de) sistema|
    mensaje (?:del|de) sistema|(?:instrucciones|indicaciones|reglas) (?:iniciales|originales|
    ocultas|del sistema|secretas|internas|confidenciales)|prompt (?:inicial|original|oculto|
    secreto)|configuracion (?:confidencial|oculta|secreta|interna))
es.extract.above; prompt_extraction; es; 0.85; asks
  = prompt|texto|instrucc|regla|indicac
    \b(?:muestra|muestrame|revela|imprime|repite|dime|escribe|copia) (?:el |la |las |
    los )?(?:prompt (?:del|de) sistema|texto (?:de arriba|anterior)(?! (?:en|como) (?:vinetas|
    (?:una )?lista|una tabla|un resumen|ingles|portugues|espanol))|instrucciones (?:del sistema|
    ocultas))|\b(?:muestra|muestrame|imprime|repite|dime|revela|escribe|cuales son|
    cuales fueron) (?:\w+ ){0,2}?(?:las )?(?:instrucciones|reglas|
    indicaciones) que (?:te )?(?:dieron|recibiste|han dado|tienes)\b
pt.extract.prompt; prompt_extraction; pt; 0.9; asks
  = prompt|instruc|mensagem|orienta|regra|configuracao
    \b(?:mostre|mostra|mostrar|revele|revela|revelar|diga|dizer|imprima|imprimir|repita|repetir|
    escreva|compartilhe|compartilhar|ensine|copie|vaze|exponha|soletre|traduza|resuma|devolva|cole|
    cite|qual e|quais sao|me de|me passe|passar) (?:\w+ ){0,2}?(?:todas )?(?:as |os |o |a )?(?:seu|
    sua|seus|suas|teu|tua|teus|tuas) (?:\w+ ){0,2}?(?:prompt (?:de|do) sistema|mensagem (?:de|
    do) sistema|(?:instrucoes|orientacoes|regras) (?:iniciais|originais|ocultas|do sistema|secretas|
    internas|confidenciais)|prompt (?:inicial|original|oculto|secreto)|configuracao (?:confidencial|
    oculta|secreta|interna))
pt.extract.above; prompt_extraction; pt; 0.85; asks
  = prompt|texto|instruc|regra|orienta
    \b(?:mostre|revele|imprima|repita|diga|escreva|copie) (?:o |a |as |os )?(?:prompt (?:de|
    do) sistema|texto (?:acima|anterior)(?! (?:em|como) (?:topicos|(?:uma )?lista|uma tabela|
    um resumo|ingles|espanhol|portugues))|instrucoes (?:do sistema|ocultas))|\b(?:mostre|imprima|
    repita|diga|revele|escreva|quais sao|quais foram) (?:\w+ ){0,2}?(?:as )?(?:instrucoes|regras|
    orientacoes) que (?:voce )?(?:recebeu|te deram|lhe deram|tem)\b
# --- fake role tags and delimiters
any.tag.chatml; role_tag; any; 0.9
  = <|im_|<|system|<|end|<|start|<|eot|<|user|<|ass
    <\|(?:im_start|im_end|system|endoftext|start_header_id|end_header_id|eot_id|user|assistant)\|>
any.tag.llama; role_tag; any; 0.85
  = [inst]|<<sys>>|</s>|<s>|[/inst]
    \[/?inst\]|<</?sys>>|</s>\s*(?:<s>|\[inst\]|system|user|assistant)|<s>\s*\[inst\]
any.tag.bracket; role_tag; any; 0.8
  = system|admin|developer|sistema
    (?:^|\n)\s*[\[{(<]\s*(?:system|sys|admin|developer|root|sistema|system override|system message|
    mensaje del sistema|mensagem do sistema)\s*[\]})>]\s*:?\s*(?:\n\s*)?(?=\S).{0,80}?\b(?:you|your|
    ignore|new|override|from now|assistant|ignora|tus|nuevas|ignore|suas|novas|voce|eres|a partir|
    de agora|instruc)
any.tag.markdown; role_tag; any; 0.8
  = ###|```
    (?:^|\n)\s*#{2,}\s*(?:system|instruction|instructions|new instructions|system prompt|sistema|
    instruccion|instrucciones|instrucao|instrucoes|nuevas instrucciones|novas instrucoes|
    admin)\s*:?\s*\n?.{0,80}?\b(?:you|ignore|from now|override|eres|ignora|voce|ignore|must|debes|
    deve)\b|```\s*(?:system|sistema|instructions?)\s*\n
any.tag.turn; role_tag; any; 0.7
  = system:|sistema:|assistant:|asistente:|assistente:
    (?:^|\n)\s*(?:system|sistema|system prompt|admin)\s*:\s*.{0,60}?\b(?:you are now|ignore|
    override|new instructions|ahora eres|ignora|nuevas instrucciones|agora voce e|novas instrucoes|
    disregard|olvida|esqueca)|(?:^|\n)\s*(?:user|usuario)\s*:.{0,200}\n\s*(?:assistant|asistente|
    assistente)\s*:\s*(?:sure|of course|claro|certo|ok)\b.{0,80}(?:system prompt|instruc|password|
    contrasena|senha)
# --- role reassignment: "you are now", "new instructions:"
en.reassign.you_are_now; role_reassignment; en; 0.85
  = now|on|become|longer
    \b(?:you are now|you re now|from now on,? you (?:are|will be|act as|become)|
    you have become) (?:an? |the |my )?(?:\w+ ){0,6}?(?:<EN_UNRESTRICTED>|ai without|bot without|
    no longer (?:bound|an? (?:ai|assistant)|restricted|limited|chatgpt|claude)|free (?:from|
    of) (?:all |your |any )?(?:rules|restrictions|guidelines|filters|policies|limits)|not bound by)|
    \byou are no longer an? (?:\w+ ){0,2}?(?:ai|assistant|chatbot|language model|bot|helpful)\b
en.reassign.new_instructions; role_reassignment; en; 0.75
  = instruction|task|goal|order|directive|prompt|objective|purpose|mission|job|role
    (?<!\bmy\W)(?<!\bour\W)(?<!\bhis\W)(?<!\bher\W)(?<!\btheir\W)(?<!\ws\W)(?<!'s\W)\b(?:new|
    updated|revised|
    real|actual|true) (?:system )?(?:instructions?|orders|directives?|prompt)\s*:|\byour (?:new|
    real|actual|true) (?:instructions|task|goal|objective|purpose|mission|
    orders|job|role) (?:is|are|will be)\b|\byour (?:purpose|role|task|goal) has (?:changed|
    been changed|been updated)\b|\bhere (?:are|is) your new (?:instructions|task|orders)\b
es.reassign.ahora_eres; role_reassignment; es; 0.85
  = ahora|convertido|ya no
    \b(?:ahora eres|a partir de ahora(?:,)? (?:eres|seras|actuaras como)|desde ahora (?:eres|seras)|
    te has convertido en) (?:una? |el |la |mi )?(?:\w+ ){0,6}?(?:<ES_UNRESTRICTED>|ya no (?:eres|
    estas)|libre|no (?:estas|esta|tienes) (?:obligad[oa]|limitad[oa]|restricciones))|
    \bya no eres una? (?:\w+ ){0,2}?(?:asistente|ia|modelo|chatbot|bot)\b|\b(?:a partir de ahora|
    desde ahora)(?:,)? ya no (?:eres|estas) (?:una? )?(?:asistente|ia|modelo|chatbot|bot|
    obligad[oa]|sujet[oa]|limitad[oa])\b
es.reassign.new_instructions; role_reassignment; es; 0.75
  = instrucc|tarea|objetivo|orden|directiva|trabajo|proposito|papel
    \b(?:nuevas|verdaderas|autenticas|reales) (?:instrucciones|ordenes|directivas)\s*:|
    \bnueva (?:directiva|instruccion|orden) del sistema\s*:|\btu (?:verdadero|nuevo) (?:trabajo|
    proposito|papel) es\b|\btu (?:proposito|papel|tarea) ha cambiado\b|\binstrucciones (?:nuevas|
    actualizadas)\s*:|\btus? (?:nuevas instrucciones|nueva tarea|nuevo objetivo|verdadera tarea|
    verdadero objetivo|verdaderas instrucciones) (?:son|es|sera|seran)\b|\baqui (?:tienes|
    estan) tus nuevas (?:instrucciones|ordenes)
pt.reassign.agora_voce; role_reassignment; pt; 0.85
  = agora|tornou|nao e mais
    \b(?:agora voce e|agora tu es|a partir de agora(?:,)? (?:voce e|voce sera|tu es|sera|atue como)|
    de agora em diante(?:,)? (?:voce e|voce sera)|voce se tornou) (?:uma? |o |a |meu |
    minha )?(?:\w+ ){0,6}?(?:<PT_UNRESTRICTED>|nao (?:e|esta) mais|livre|nao (?:esta|e|
    tem) (?:obrigad[oa]|limitad[oa]|restricoes|regras))|
    \bvoce nao e mais uma? (?:\w+ ){0,2}?(?:assistente|ia|modelo|chatbot|bot)\b|
    \b(?:a partir de agora|de agora em diante)(?:,)? (?:voce )?nao (?:e|
    esta) mais (?:uma? )?(?:assistente|ia|modelo|chatbot|bot|obrigad[oa]|sujeit[oa]|limitad[oa])\b
pt.reassign.new_instructions; role_reassignment; pt; 0.75
  = instruc|tarefa|objetivo|ordens|diretiva|trabalho|proposito|papel|ordem
    \b(?:novas|verdadeiras|reais) (?:instrucoes|ordens|diretivas)\s*:|\bnova (?:diretiva|instrucao|
    ordem) do sistema\s*:|\b(?:seu|teu) (?:verdadeiro|novo) (?:trabalho|proposito|papel) e\b|
    \b(?:seu|teu) (?:proposito|papel) mudou\b|\binstrucoes (?:novas|atualizadas)\s*:|\b(?:suas|tuas|
    sua|tua|seu|teu) (?:novas instrucoes|nova tarefa|novo objetivo|verdadeira tarefa|
    verdadeiro objetivo|verdadeiras instrucoes) (?:sao|e|sera|serao)\b|\baqui (?:estao|
    esta) (?:as )?suas novas (?:instrucoes|ordens)
# --- policy bypass
en.bypass.policy; policy_bypass; en; 0.85
  = bypass|circumvent|disable|turn off|ignore|evade|get around|switch off|deactivate|overrid|remove
  = skip
    \b(?:bypass|circumvent|disable|turn off|switch off|deactivate|ignore|evade|get around|override|
    remove|skip) (?:all |any )?(?:of )?(?:your|openai s|anthropic s|its|
    the model s) (?:\w+ )?(?:safety|content|ethical|moral|usage)? ?(?:filters?|guardrails|policies|
    policy|guidelines|restrictions|safeguards|moderation|alignment|censorship|ethics)\b|
    \bget around the (?:moderation|safety filters?|content filters?|guardrails)\b
en.bypass.no_rules; policy_bypass; en; 0.8
  = rules|restrict|filter|limit|polic|censor|guideline|warning|refusal|disclaimer|moraliz
    \b(?:you (?:have|ve got) no|you are not bound by(?: any)?|you don ?t have (?:any|to follow)|
    there are no|without any|free of all) (?:\w+ )?(?:rules|restrictions|filters|limits|limitations|
    policies|guidelines|censorship|ethical (?:guidelines|constraints))\b.{0,60}?\b(?:answer|respond|
    reply|tell|say|write|do|comply|output)|\b(?:answer|respond|
    reply) (?:\w+ ){0,3}?(?:without (?:any )?(?:restrictions|filters|censorship|refusals|
    moralizing|limits)|with no (?:moralizing|refusals|filters?)|
    uncensored|unfiltered)|\b(?:your|the) (?:usual |normal |standard |regular )?(?:policies|rules|
    guidelines|restrictions|filters) (?:do not|don ?t|no longer) apply\b
es.bypass.policy; policy_bypass; es; 0.85
  = evita|evade|elud|desactiva|salta|ignora|omite|apaga|quita|sortea
    \b(?:evita|evade|elude|eludir|desactiva|desactivar|saltate|ignora|ignorar|omite|apaga|quita|
    sortea|salta|saltarte|saltar|saltarse) (?:todos |todas )?(?:tus|los|las|sus|tu|
    su) (?:\w+ )?(?:filtros|politicas|politica|restricciones|salvaguardas|normas de (?:seguridad|
    contenido|uso)|directrices (?:eticas|de seguridad)|limites eticos|censura|moderacion)\b|
    \b(?:eludir|evitar|saltarte|saltar|sortear) la (?:moderacion|censura)\b
es.bypass.no_rules; policy_bypass; es; 0.8
  = restric|filtro|regla|limit|censura|advertencia|negar|politica|norma
    \b(?:no tienes|ya no tienes|no hay|estas libre de) (?:ninguna |ningun )?(?:\w+ )?(?:reglas|
    restricciones|filtros|limites|politicas|censura)\b.{0,60}?\b(?:responde|contesta|di|dime|
    escribe|haz|cumple)|\b(?:responde|contesta|
    respondeme) (?:\w+ ){0,5}?(?:sin (?:ninguna )?(?:restriccion|restricciones|filtros|censura|
    limites|sermones)|sin negarte)|\b(?:tus|las) (?:politicas|reglas|normas|
    restricciones)(?: habituales| normales| de siempre)? (?:ya )?no (?:aplican|se aplican|cuentan)\b
pt.bypass.policy; policy_bypass; pt; 0.85
  = contorn|burl|desativ|deslig|ignor|evite|remova|pule|pular|desabilit
    \b(?:contorne|contornar|burle|burlar|desative|desativar|desligue|ignore|ignorar|evite|remova|
    pule|desabilite|pular) (?:todos |todas )?(?:os |as |a |o )?(?:seus|suas|os|as|sua|
    seu) (?:\w+ )?(?:filtros|politicas|politica|restricoes|salvaguardas|regras de (?:seguranca|
    conteudo|uso)|diretrizes (?:eticas|de seguranca)|limites eticos|censura|moderacao)\b|
    \b(?:burlar|contornar|driblar|pular) a (?:moderacao|censura)\b
pt.bypass.no_rules; policy_bypass; pt; 0.8
  = restric|filtro|regra|limit|censura|aviso|recusar|politica|norma
    \b(?:voce nao tem|voce ja nao tem|nao existem|nao ha|voce esta livre de) (?:nenhuma |
    nenhum )?(?:\w+ )?(?:regras|restricoes|filtros|limites|politicas|
    censura)\b.{0,60}?\b(?:responda|diga|escreva|faca|cumpra|me de)|\b(?:responda|responde|
    me responda) (?:\w+ ){0,5}?(?:sem (?:nenhuma )?(?:restricao|restricoes|filtros|censura|
    limites|sermao|sermoes)|sem se recusar)|\b(?:suas|as) (?:politicas|regras|normas|
    restricoes)(?: de sempre| habituais| normais)? (?:ja )?nao (?:se aplicam|valem|contam)\b
# --- payload hints
en.payload.decode_follow; encoded_payload; en; 0.85
  = decod|deciph|decrypt|base64|base 64|hex|rot13|rot 13|cipher|encoded
    \b(?:decode|decipher|decrypt)\b.{0,80}?\b(?:and|then)\b.{0,30}?\b(?:follow(?! ?up)|execute|obey|
    carry out|act on|comply with|do (?:what|as) it says)\b|\b(?:translate|
    convert)\b.{0,40}?\b(?:base ?64|hex|rot ?13|binary|cipher|encoded)\b.{0,60}?\b(?:and|
    then)\b.{0,30}?\b(?:follow(?! ?up)|execute|obey|carry out|act on|comply with|do (?:what|
    as) it says)\b|\b(?:follow|execute|obey|run|carry out) (?:the )?(?:decoded|hidden|
    encoded) (?:instructions?|text|message|payload|commands?)
es.payload.decode_follow; encoded_payload; es; 0.85
  = decodific|descodific|descifr|base64|base 64|hex|rot13|rot 13|codificad|cifrad|ocult
    \b(?:decodifica|descodifica|descifra|decodificalo|descifralo)\b.{0,80}?\b(?:y|
    luego)\b.{0,30}?\b(?:sigue|siguelo|ejecuta|ejecutala|ejecutalo|obedece|cumple|haz lo que dice|
    aplica)\b|\b(?:traduce|convierte|traducelo)\b.{0,40}?\b(?:base ?64|hex|hexadecimal|rot ?13|
    binario|cifrado|codificado)\b.{0,60}?\b(?:y|luego)\b.{0,30}?\b(?:sigue|ejecuta|obedece|cumple|
    haz lo que dice)\b|\b(?:sigue|ejecuta|obedece|cumple) (?:las |el |lo |la )?(?:instrucciones|
    texto|mensaje|orden|ordenes|comandos?)? ?(?:decodificad|ocult|codificad|cifrad)
pt.payload.decode_follow; encoded_payload; pt; 0.85
  = decodifi|decifr|base64|base 64|hex|rot13|rot 13|codificad|cifrad|ocult
    \b(?:decodifique|decodifica|decifre|decifra)\b.{0,80}?\b(?:e|depois)\b.{0,30}?\b(?:siga|execute|
    obedeca|cumpra|faca o que (?:ela|ele) diz|aplique)\b|\b(?:traduza|
    converta)\b.{0,40}?\b(?:base ?64|hex|hexadecimal|rot ?13|binario|cifrado|
    codificado)\b.{0,60}?\b(?:e|depois)\b.{0,30}?\b(?:siga|execute|obedeca|cumpra|faca o que (?:ela|
    ele) diz)\b|\b(?:siga|execute|obedeca|cumpra) (?:as |o |a )?(?:instrucoes|texto|mensagem|ordem|
    ordens|comandos?)? ?(?:decodificad|ocult|codificad|cifrad)
# --- instructions hidden in documents, aimed at the model
en.indirect.ai_reader; indirect_injection; en; 0.8
  = ai|assistant|model|llm|bot|gpt|copilot|automat
    \b(?:if you are|if you re|attention|(?:important )?note to|message to|instruction for|dear|
    hey) (?:an? |the |all )?(?:(?:automated|automatic|ai) (?:\w+ )?(?:system|screener|reviewer|
    grader|tool)|ai|assistant|language model|llm|chatbot|bot|gpt|copilot)s?\b(?: (?:reading|
    processing|summari[sz]ing|parsing|analy[sz]ing|that reads) (?:this|these))?.{0,80}?\b(?:ignore|
    disregard|you must|you should|do not|instead|forward|send|reply|tell|recommend|rate|rank|
    score|classify|say|include|mark|approve)
en.indirect.any_ai; indirect_injection; en; 0.8
  = ai|assistant|model|llm|bot|agent
    \b(?:any|every|all|each) (?:ai|llm|language model|assistant|chatbot|bot|agent)s? (?:that|which|
    who) (?:reads?|summari[sz]es?|process(?:es)?|analy[sz]es?|sees?|parses?)\b.{0,60}?\b(?:must|
    should|has to|needs to|is required to)\b|\b(?:ai|llm|language model|assistant|agent|
    model)s? (?:that is |currently )?(?:processing|reading|summari[sz]ing|parsing|
    analy[sz]ing) (?:this|these)\b.{0,80}?\b(?:accept|ignore|send|forward|share|say|tell|reply|
    reveal|delete|approve)\b
es.indirect.ai_reader; indirect_injection; es; 0.8
  = ia|asistente|modelo|bot|llm|automat
    \b(?:si eres|atencion|(?:nota|mensaje|instruccion|aviso)(?: importante)? para|querid[oa]|hola|
    oye) (?:una? |el |la |los |las )?(?:sistema (?:de \w+ )?(?:automatic[oa]|automatizad[oa]|de ia)|
    ia|inteligencia artificial|asistente|modelo de lenguaje|llm|chatbot|bot)s?\b.{0,80}?\b(?:ignora|
    olvida|debes|no (?:menciones|digas)|en su lugar|reenvia|envia|responde|di|recomienda|califica|
    clasifica|puntua|selecciona|incluye|aprueba|informa|deja de|revela|muestra)
es.indirect.any_ai; indirect_injection; es; 0.8
  = ia|asistente|modelo|bot|agente
    \b(?:cualquier|toda|todo|cada) (?:ia|asistente|modelo|chatbot|bot|agente)\b (?:que (?:lea|
    resuma|procese|analice|vea))?.{0,60}?\b(?:debe|tiene que|deberia)\b|\b(?:ia|asistente|modelo|
    agente)(?: de ia)? (?:que (?:procesa|lee|resume|analiza)|procesando|leyendo|resumiendo) (?:esta|
    este|estos|estas)\b.{0,80}?\b(?:acepta|ignora|envia|reenvia|comparte|di|responde|revela|borra|
    aprueba)\b
pt.indirect.ai_reader; indirect_injection; pt; 0.8
  = ia|assistente|modelo|bot|llm|automat
    \b(?:se voce e|atencao|(?:nota|mensagem|instrucao|aviso|observacao)(?: importante)? para|
    querid[oa]|ola|ei) (?:uma? |o |a |os |as )?(?:sistema (?:de \w+ )?(?:automatic[oa]|
    automatizad[oa]|de ia)|ia|inteligencia artificial|assistente|modelo de linguagem|llm|chatbot|
    bot)s?\b.{0,80}?\b(?:ignore|esqueca|voce deve|nao (?:mencione|diga)|em vez disso|encaminhe|
    envie|responda|diga|recomende|avalie|classifique|pontue|selecione|inclua|aprove|informe|
    pare de|revele|mostre)
pt.indirect.any_ai; indirect_injection; pt; 0.8
  = ia|assistente|modelo|bot|agente
    \b(?:qualquer|toda|todo|cada) (?:ia|assistente|modelo|chatbot|bot|agente)\b (?:que (?:leia|
    resuma|processe|analise|veja))?.{0,60}?\b(?:deve|tem que|precisa)\b|\b(?:ia|assistente|modelo|
    agente)(?: de ia)? (?:que (?:processa|le|resume|analisa)|processando|lendo|resumindo) (?:esta|
    este|estes|estas)\b.{0,80}?\b(?:aceite|ignore|envie|encaminhe|compartilhe|diga|responda|revele|
    apague|aprove)\b
# --- a pasted document that turns to the model ("Assistant: do not translate...")
any.indirect.addressed; indirect_injection; any; 0.8
  = assistant|asistente|assistente|ai|ia|model|modelo|llm|bot|gpt|system|sistema|admin
    (?:(?:^|\n|[>"*\]\-(]) ?(?:(?:quick |important )?(?:note|message|instructions?|directive)
     (?:to|for) (?:any |all |the |every )?|(?:(?:nota|mensaje|mensagem|instrucciones|instrucoes|
    aviso|recado) )?(?:para|pra) (?:el |la |o |a |cualquier |qualquer |toda |todo )?)?(?:ai|
    assistant|asistente|assistente|ia|language model|modelo de lenguaje|modelo de linguagem|llm|
    chatbot|gpt)(?: \w+){0,2}?(?: (?:reading|processing|summari[sz]ing|that reads|que (?:lee|lees|
    le|les|resume|resumes|resuma|procesa|procesas|processa|analiza|analisa)|lendo|leyendo|
    resumiendo|resumindo) (?:this|these|esto|esta|este|isto|isso|esse|essa)(?: \w+)?)? ?[,:]
     ?(?:\w+ ){0,4}?(?:ignore|ignora|disregard|do not|don t|no (?:traduzcas|resumas|menciones|
    digas)|nao (?:traduza|resuma|mencione|diga)|instead|en su lugar|em vez disso|abandon|
    abandona|abandone|forget|olvida|esqueca|stop|deja de|pare de|new (?:task|instructions?)|
    nueva tarea|nova tarefa|tell|dile|diga|add|anade|agrega|adicione|acrescente|always|siempre|
    sempre|recommend|recomienda|recomende|output|before answering|antes de responder|in your
    (?:reply|answer|summary)|en tu (?:respuesta|resumen)|na (?:sua )?(?:resposta|
    resumo))|\[(?:system|sistema|admin|developer|desarrollador|desenvolvedor)\] ?(?:new |nueva |
    nova )?(?:directive|directiva|diretiva|instructions?|instrucciones|instrucoes|order|orden|
    ordem|task|tarea|tarefa))
any.indirect.hidden_html; indirect_injection; any; 0.8
  = display|hidden|<!--|visibility|font-size
    (?:display ?none|visibility ?hidden|font-size ?0|<!--|hidden>)[^<]{0,40}?(?:ai|ia|assistant|
    asistente|assistente|language model|modelo de lenguaje|modelo de linguagem|llm|model|
    modelo)\b.{0,120}?\b(?:ignore|ignora|disregard|forget|olvida|esqueca|instead|en su lugar|
    em vez|tell|dile|diga|say|di|reply|responde|responda|recommend|recomienda|recomende)
"""
